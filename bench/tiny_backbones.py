"""Tiny backbones: which backbone and input size `tiny` can afford in the browser.

Every backbone of models.architectures.TINY_BACKBONES at 160, 192 and 224 px is built with
build_tiny (ImageNet weights from ../shared/weights and an untrained head: size and speed do
not depend on the head's weights) and converted by our converter (converter.export.convert,
--skip-js-checks) into .tmp/bench/. The converter converts every quantization and records each
one's bytes (model.json + weight shards); the float16 conversion is the one written, with the
face model beside it, and the one timed: TF.js turns quantized weights back into float32 when it
loads them, so the quantization changes the download, not the time per face.

Time per face: the built extension in headless Chromium, by bench/browser_bench.mjs and its probe
(bench/browser_probe.js: the extension's own detector.js on TF.js wasm, one thread, SIMD), the
classifier alone on one face crop per call (detector.scores: resize the crop, run the model, read
p_fake back), after the model's load warm-up and one untimed call. Only the probe and one
right-click run here; the browser section measures the rest of the extension.

Budgets (the issue): the extension's model files, the classifier's plus the face model's and
metadata.json, at most 4 MB (MB = 2**20 bytes, as bench/report.py prints); and at most 30 ms per
face at p95. Both are judged per quantization; the classifier's own bytes are recorded too.

    python -m bench.run --only tiny-backbones --out /tmp/tiny.json         # every candidate
    python -m bench.run --smoke --only tiny-backbones --out /tmp/tiny.json # one, a few runs (the script works)

The full run (make bench) includes this section; --smoke leaves it out unless asked for by --only.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from bench.common import CACHE, ROOT, BenchError, file_hash, image_set, mb, say, summary, table

SECTION = "tiny-backbones"
SIZES = (160, 192, 224)
QUANTIZATIONS = ("none", "mixed", "float16", "uint8")
TIMED_QUANTIZATION = "float16"
MODEL_BYTES_BUDGET = 4 * 1024 * 1024
P95_MS_BUDGET = 30.0
# What a conversion depends on (its cache key): these files, tiny's builder and its helpers, and
# the contract's tiny and faces entries (not the whole of architectures.py or preprocessing.json,
# which change with other detectors).
SOURCES = ["models/backbones.py", "models/detector.py", "models/faces.py", "models/blazeface.py", "converter/export.py", "converter/tfjs.py",
           "converter/metadata.py", "converter/ops.py", "converter/faces.py"]
BUILDERS = ["build_tiny", "_ported_input_scaling", "_to_backbone_scaling", "_ported_backbone", "build_backbone",
            "load_tfjs_weights"]


def candidates(smoke: bool) -> list[tuple[str, int]]:
    from models.architectures import TINY_BACKBONES

    if smoke:
        return [(TINY_BACKBONES[0], SIZES[0])]
    return [(b, s) for b in TINY_BACKBONES for s in SIZES]


def measure(smoke: bool, data: Path | None, work: Path) -> dict:
    from bench.browser import _node
    from models.architectures import TINY_FINE_TUNE_FROM, _ported_input_scaling
    from models.preprocessing import input_spec

    inferences = 5 if smoke else 100
    n_infer = 2 if smoke else 6
    todo = candidates(smoke)
    converted = {key(b, s): _converted(b, s) for b, s in todo}

    folder = work / "images"
    folder.mkdir(parents=True, exist_ok=True)
    faces = image_set(1 + n_infer, None, work / "source")  # synthetic faces, as the browser section's classifier runs
    names = []
    for i, p in enumerate(faces.paths):
        names.append(f"face_{i:03d}.jpg")
        shutil.copyfile(p, folder / names[-1])
    # Only the probe (load, classifier per face) and the first right-click (browser_bench.mjs always makes one).
    runs = {"cold": 0, "checks": 0, "loads": 1, "inferences": inferences, "steps": 0, "finds": 0, "decodes": 0,
            "feeds": 0, "no_face_clicks": 0}
    config = {"models": [{"key": k, "tfjs": str(c["dir"])} for k, c in converted.items()],
              "images": str(folder), "feed": [], "click": names[:1], "click_no_face": [], "infer": names[1:],
              "pictures": [], "runs": runs, "out": str(work / "raw.json")}
    (work / "config.json").write_text(json.dumps(config, indent=1))
    say(SECTION, f"timing {len(converted)} conversions in headless Chromium (bench/browser_bench.mjs)")
    _node(work / "config.json")
    raw = json.loads((work / "raw.json").read_text())

    contract = input_spec("tiny")
    rows = {}
    for (backbone, size), (k, conv) in zip(todo, converted.items()):
        r = raw[k]
        probe = r["probe"]
        if probe["model"]["input_size"] != size:
            raise BenchError(f"{k}: the browser ran a {probe['model']['input_size']} px model, not {size} px")
        ms = summary(probe["inference_ms"], p95=True, digits=2)
        rest = conv["rest_bytes"]
        extension = {q: conv["model_bytes"][q] + rest for q in QUANTIZATIONS}
        scale, offset = _ported_input_scaling(backbone) if backbone != "mobilenet_v1_0.25" else ([1 / 127.5] * 3, [-1.0] * 3)
        rows[k] = {
            "backbone": backbone, "input_size": size, "parameters": conv["parameters"],
            "today": backbone == "mobilenet_v1_0.25" and size == 224,
            "model_bytes": conv["model_bytes"],
            "face_model_and_metadata_bytes": rest,
            "extension_model_bytes": extension,
            "wasm_ms_per_face": ms,
            "size_budget_met": {q: extension[q] <= MODEL_BYTES_BUDGET for q in QUANTIZATIONS},
            "speed_budget_met": ms["p95"] <= P95_MS_BUDGET,
            "input_scaling": {"scale": [round(float(v), 8) for v in scale], "offset": [round(float(v), 6) for v in offset]},
            "fine_tune_from": TINY_FINE_TUNE_FROM[backbone],
            "converted": conv["note"],
            "chromium": r["chromium"],
            "backend": {"backend": probe["backend"]["backend"], "simd": probe["backend"]["simd"], "tfjs": probe["backend"]["tfjs"]},
            "face_crops": probe["crops"],
        }
    return {
        "how": HOW,
        "budgets": {"extension_model_bytes": MODEL_BYTES_BUDGET, "wasm_p95_ms_per_face": P95_MS_BUDGET},
        "timed_quantization": TIMED_QUANTIZATION,
        "contract": {"input_size": contract.input_size, "scale": contract.scale, "offset": contract.offset},
        "images": faces.source,
        "candidates": rows,
    }


HOW = ("build_tiny(backbone, input_size) with ImageNet weights from ../shared/weights and an untrained head; "
       "converter.export.convert (--skip-js-checks) gives every quantization's bytes (model.json + shards); "
       "extension total = the classifier's files + the face model (face/) + metadata.json; time per face: the built "
       f"extension in headless Chromium (bench/browser_bench.mjs, bench/browser_probe.js), detector.scores on one face "
       f"crop per call, TF.js wasm, one thread, {TIMED_QUANTIZATION} conversion (weights are float32 once loaded), "
       "after the load warm-up and one untimed call")


def key(backbone: str, size: int) -> str:
    return f"{backbone}@{size}"


def _converted(backbone: str, size: int) -> dict:
    """The float16 conversion of build_tiny(backbone, input_size=size), cached in .tmp/bench/."""
    from bench.browser import _files

    h = file_hash(*(ROOT / f for f in SOURCES), _builder_source(), f"{backbone}-{size}")
    folder = CACHE / f"tiny-backbone-{backbone}-{size}-{h}"
    if not (folder / "metadata.json").is_file():
        _convert(backbone, size, folder)
    meta = json.loads((folder / "metadata.json").read_text())
    files = _files(folder)
    sizes = meta["conversion"]["model_bytes_by_quantization"]
    if sizes[TIMED_QUANTIZATION] != files["total_bytes"] - files["bytes"]["metadata.json"]:
        raise BenchError(f"{folder}: the files on disk do not match the converter's {TIMED_QUANTIZATION} size; delete the folder")
    return {"dir": folder, "parameters": meta["parameters"], "model_bytes": {q: sizes[q] for q in QUANTIZATIONS},
            "rest_bytes": files["bytes"]["metadata.json"] + files["face_total_bytes"],
            "note": f"converter.export.convert ({TIMED_QUANTIZATION} written, --skip-js-checks) into {folder}"}


def _builder_source() -> str:
    """A digest of tiny's builder and helpers (their source) and the contract entries a conversion reads."""
    import inspect

    from models import architectures
    from models.preprocessing import contract

    c = contract()
    parts = [inspect.getsource(getattr(architectures, name)) for name in BUILDERS]
    parts += [json.dumps({"tiny": c["models"]["tiny"], "faces": c["faces"], "version": c["version"]}, sort_keys=True)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _convert(backbone: str, size: int, folder: Path) -> None:
    from converter.export import convert
    from models import architectures
    from models.calibration import Calibration
    from models.detector import Detector
    from models.preprocessing import InputSpec, input_spec

    say(SECTION, f"building and converting tiny on {backbone} at {size} px into {folder}")
    spec = input_spec("tiny")
    try:
        model = architectures.build_tiny(backbone=backbone, input_size=size)
    except FileNotFoundError as e:
        raise BenchError(f"cannot build tiny on {backbone}: {e}") from e
    info = {"name": f"tiny-{backbone}-{size}", "version": "bench-untrained-head",
            "preprocessing": InputSpec(size, spec.scale, spec.offset).as_dict()}
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    convert(Detector(model, "tiny", Calibration(), info), tmp, quantize=TIMED_QUANTIZATION, js_checks=False,
            log=lambda m: say(SECTION, m))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


# --- Markdown (bench/report.py) ---------------------------------------------------------------
def markdown(sec: dict) -> list[str]:

    b = sec["budgets"]
    lines = [sec["how"] + ".", "",
             f"Budgets: extension model files at most {mb(b['extension_model_bytes'])} (MB = 2^20 bytes); "
             f"at most {b['wasm_p95_ms_per_face']:g} ms per face at p95. Images: {sec['images']}.", ""]
    rows = []
    for k, c in sec["candidates"].items():
        ms = c["wasm_ms_per_face"]
        fits = [q for q in ("mixed", "float16", "uint8") if c["size_budget_met"][q] and c["speed_budget_met"]]
        rows.append([c["backbone"] + (" (today)" if c["today"] else ""), f"{c['input_size']} px", f"{c['parameters']:,}",
                     mb(c["model_bytes"]["mixed"]), mb(c["model_bytes"]["float16"]), mb(c["model_bytes"]["uint8"]),
                     mb(c["extension_model_bytes"]["float16"]), mb(c["extension_model_bytes"]["uint8"]),
                     f"{ms['median']:.1f} / {ms['p95']:.1f} (n={ms['runs']})", ", ".join(fits) or "none"])
    lines += table(["backbone", "input", "parameters", "mixed", "float16", "uint8", "extension, float16",
                     "extension, uint8", "wasm 1 thread, ms per face p50 / p95", "meets both budgets"], rows)
    rest = {c["face_model_and_metadata_bytes"] for c in sec["candidates"].values()}
    lines += [f"mixed / float16 / uint8: the classifier's model.json + shards; extension: plus the face model and "
              f"metadata.json ({', '.join(mb(r) for r in sorted(rest))}).", ""]
    return lines
