"""Images and a development model for the extension's browser tests (never faces-v1).

    python tests/extension/fixtures.py images ROOT        # ROOT/site, ROOT/cdn, ROOT/other + index.json
    python tests/extension/fixtures.py devmodel OUT ROOT  # OUT/keras (detector), OUT/tfjs (converted)

The page fixtures in tests/extension/pages/ name these files. The development model is only
for machines where extension/model/ (the shipped model) does not exist yet.
"""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.synthetic import decompression_bomb, encode, face_image, write_image  # noqa: E402

# name -> (label, height, width, seed). Some are over twice the model's input side, so the
# box-average step of the preprocessing runs; some are not square.
FEED = {
    "feed_00.jpg": ("real", 300, 300, 1),
    "feed_01.jpg": ("fake", 300, 300, 2),
    "feed_02.png": ("real", 260, 400, 3),
    "feed_03.png": ("fake", 400, 260, 4),
    "feed_04.jpg": ("real", 520, 520, 5),
    "feed_05.jpg": ("fake", 540, 380, 6),
    "lazy_00.jpg": ("fake", 320, 320, 7),
    "lazy_01.jpg": ("real", 320, 320, 8),
    "swap_00.jpg": ("fake", 300, 300, 9),
    "swap_01.jpg": ("real", 300, 300, 10),
    "more_00.jpg": ("real", 300, 300, 11),
    "more_01.jpg": ("fake", 300, 300, 12),
    "more_02.png": ("real", 300, 300, 13),
    "more_03.jpg": ("fake", 300, 300, 14),
    "srcset_1x.jpg": ("fake", 300, 300, 15),
    "srcset_2x.jpg": ("real", 600, 600, 16),
    "picture.webp": ("real", 300, 300, 17),
    "picture.jpg": ("fake", 300, 300, 18),
    "blobsrc.jpg": ("fake", 300, 300, 19),
    "inline.png": ("real", 200, 200, 20),
    "small_shown.jpg": ("fake", 300, 300, 21),
}
CDN = {
    "cdn_00.jpg": ("fake", 300, 300, 31),
    "cdn_01.png": ("real", 300, 300, 32),
    "cdn_02.jpg": ("real", 400, 300, 33),
    "cdn_more_00.jpg": ("fake", 300, 300, 34),
    "cdn_more_01.jpg": ("real", 300, 300, 35),
}
# Served from a host the extension has no permission for (the right-click test asks for it).
OTHER = {
    "other_00.jpg": ("fake", 300, 300, 41),
}


def _face(label, h, w, seed):
    import numpy as np

    side = max(h, w)
    img = face_image(label, side, seed)
    top, left = (side - h) // 2, (side - w) // 2
    return np.ascontiguousarray(img[top : top + h, left : left + w])


def images(root: Path) -> dict:
    root = Path(root)
    for folder, names in (("site/img", FEED), ("cdn", CDN), ("other", OTHER)):
        for name, (label, h, w, seed) in names.items():
            write_image(root / folder / name, _face(label, h, w, seed))
    site = root / "site/img"
    # Bad and small ones.
    good = encode(_face("fake", 300, 300, 50))
    (site / "truncated.jpg").write_bytes(good[: len(good) * 2 // 3])  # the browser shows most of it
    (site / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8)  # broken in the page
    write_image(site / "tiny.png", _face("real", 40, 40, 51))
    decompression_bomb(site / "bomb.png")  # 20000 x 20000 pixels in a few kB
    (site / "drawing.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="300" height="300"><circle cx="150" cy="150" r="120" fill="#c42b32"/></svg>')
    index = {
        "feed": sorted(FEED),
        "cdn": sorted(CDN),
        "other": sorted(OTHER),
        "labels": {n: v[0] for n, v in {**FEED, **CDN, **OTHER}.items()},
        "inline_data_url": "data:image/png;base64," + base64.b64encode((site / "inline.png").read_bytes()).decode(),
    }
    (root / "index.json").write_text(json.dumps(index, indent=1))
    return index


def _gap_thresholds(ps: list[float]) -> tuple[float, float, float]:
    """Real and fake thresholds in the two widest gaps between the scores, one in each half,
    so the images get all three verdicts and none sits near a threshold. Also the margin."""
    s = sorted(ps)
    n = len(s)
    gaps = [((s[i + 1] - s[i]), i) for i in range(n - 1)]
    lower = max(g for g in gaps if n // 5 <= g[1] < n // 2)
    upper = max(g for g in gaps if n // 2 <= g[1] < n - n // 5)
    real_t = (s[lower[1]] + s[lower[1] + 1]) / 2
    fake_t = (s[upper[1]] + s[upper[1] + 1]) / 2
    return real_t, fake_t, min(lower[0], upper[0]) / 2


def devmodel(out: Path, images_root: Path) -> dict:
    """The tiny architecture with its ImageNet backbone and an untrained head, with thresholds
    set so the fixture images get every verdict, converted for TF.js with `unmask convert`.
    (tests.synthetic.small_detector's tiny has a random backbone, whose features vanish: it
    gives every image the same score, which would prove little here.)"""
    import keras

    from models import architectures
    from models.calibration import Calibration
    from models.detector import Detector
    from models.preprocessing import load_image

    out = Path(out)
    keras_dir = out / "keras"
    keras.utils.set_random_seed(0)
    det = Detector(architectures.build_tiny(), "tiny", Calibration(), {"name": "tiny", "version": "extension-test"})
    det.save(keras_dir)
    root = Path(images_root)
    files = [root / "site/img" / n for n in FEED] + [root / "cdn" / n for n in CDN] + [root / "other" / n for n in OTHER]
    preds = det.predict_images([load_image(p) for p in files])
    real_t, fake_t, margin = _gap_thresholds([p.p_fake_raw for p in preds])
    det.calibration.real_threshold, det.calibration.fake_threshold = real_t, fake_t
    det.save_info()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run([str(ROOT / ".venv/bin/unmask"), "convert", str(keras_dir), "--out", str(out / "tfjs"), "--quantize", "float16"], check=True, env=env)
    info = {"keras": "keras", "tfjs": "tfjs", "real_threshold": real_t, "fake_threshold": fake_t, "margin": margin}
    (out / "devmodel.json").write_text(json.dumps(info, indent=1))
    return info


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "images":
        print(json.dumps(images(Path(sys.argv[2]))))
    elif what == "devmodel":
        print(json.dumps(devmodel(Path(sys.argv[2]), Path(sys.argv[3]))))
    else:
        sys.exit(f"unknown command {what}; use images or devmodel")
