"""Models: for every detector, its parameters, its file size, and CPU inference time at
batch 1 and batch 32 (Detector.raw_scores, the call the CLI and the server make).

A bundled detector (models/bundled/NAME, or $UNMASK_MODELS_DIR/NAME) is measured as shipped.
Every other architecture is built from models/registry.py at its default size with untrained
weights (time and size do not depend on the values of the weights) and saved to a temporary
folder, so its file is the one training would write.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from bench.common import say, summary, timed

SECTION = "models"


def measure(smoke: bool) -> dict:
    import numpy as np

    from models.detector import BUNDLED, BUNDLED_DIR, MODEL_FILE, Detector
    from models.registry import ARCHITECTURES

    names = ["tiny", "seed-cnn"] if smoke else list(ARCHITECTURES)
    runs = {1: 2, 4: 2} if smoke else {1: 10, 32: 5}  # batch size -> timed calls
    batches = list(runs)
    out = {"how": "Detector.raw_scores(batch) on random 0..255 float32 inputs at the model's contract size, "
                  "TensorFlow on the CPU; timed calls per batch size (" + ", ".join(f"batch {b}: {n}" for b, n in runs.items())
                  + ") after one untimed warm-up call; file size: model.keras as saved",
           "batch_sizes": batches, "detectors": {}}
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="unmask-bench-models-") as tmp:
        for name in names:
            bundled = BUNDLED_DIR / name
            if name in BUNDLED and (bundled / MODEL_FILE).is_file():
                det = Detector.load(name)
                where, source = bundled, f"bundled ({bundled}, version {det.version})"
            else:
                say(SECTION, f"{name}: building the architecture (untrained weights)")
                det = _built(name, Path(tmp) / name)
                where, source = det.path, "built from models/registry.py at its default size, untrained weights"
            size = det.spec.input_size
            row = {"source": source, "input_size": size, "parameters": int(det.model.count_params()),
                   "file_bytes": (Path(where) / MODEL_FILE).stat().st_size, "ms_per_batch": {}, "images_per_s": {}}
            for b in batches:
                x = rng.uniform(0, 255, (b, size, size, 3)).astype("float32")
                seconds = timed(lambda: det.raw_scores(x, batch_size=b), runs[b])
                row["ms_per_batch"][str(b)] = summary([1000 * s for s in seconds])
                row["images_per_s"][str(b)] = summary([b / s for s in seconds], digits=1)
                say(SECTION, f"{name}: batch {b}: median {row['ms_per_batch'][str(b)]['median']:.1f} ms")
            out["detectors"][name] = row
            del det
    return out


def _built(name: str, folder: Path):
    from models.calibration import Calibration
    from models.detector import Detector
    from models.registry import build

    kwargs = {"weights": None} if name in ("tiny", "pretrained") else {}
    det = Detector(build(name, **kwargs), name, Calibration(), {"name": name, "version": "bench-untrained"})
    det.save(folder)
    return det
