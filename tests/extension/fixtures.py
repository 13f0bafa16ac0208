"""Images, Python's answers and a development model for the extension's browser tests.

    python tests/extension/fixtures.py images ROOT             # ROOT/site, ROOT/cdn, ROOT/other + index.json
    python tests/extension/fixtures.py expect KERAS ROOT OUT   # models.inference.FaceCheck on every image
    python tests/extension/fixtures.py devmodel OUT ROOT       # OUT/keras (detector), OUT/tfjs (converted)

The page fixtures in tests/extension/pages/ name these files. Faces first: the feed's
pictures are synthetic faces (tests/synthetic.py) that the face finder finds (each one checked
here, with a margin over its score threshold) and synthetic scenes without a face; the group
photos paste a few faces-v1 files (../shared/data/faces-v1, read at test time, never stored)
into a scene. The development model is only for machines where extension/model/ does not exist.
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
# box-average step of the preprocessing runs; some are not square. The seed is where the
# search for a clear face starts (see _clear_face).
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
# Pictures without a face: folder -> {name: (height, width, seed)}.
SCENES = {
    "site/img": {"scene_00.jpg": (400, 600, 100), "scene_01.png": (360, 360, 103), "scene_02.jpg": (300, 520, 105)},
    "cdn": {"cdn_scene.jpg": (400, 600, 110)},
}
# Group photos: name -> (height, width, scene seed, [(source, label, index in the sorted
# manifest, (x, y, side))]): faces-v1 files pasted into a scene.
GROUPS = {
    "group.jpg": (560, 900, 7, [("stylegan1-ffhq", "real", 0, (60, 180, 200)), ("genphotos", "fake", 0, (360, 150, 220)),
                                ("stylegan1-ffhq", "fake", 3, (660, 200, 180))]),
    "group2.jpg": (340, 560, 8, [("dfdc", "real", 0, (40, 60, 200)), ("dfdc", "fake", 0, (300, 80, 180))]),
}
FACES_V1 = Path(os.environ.get("UNMASK_FACES_V1", ROOT.parent / "shared/data/faces-v1"))
MIN_SCORE_MARGIN = 0.08  # a fixture face scores at least this much over the finder's min_score


def _face(label, h, w, seed):
    import numpy as np

    side = max(h, w)
    img = face_image(label, side, seed)
    top, left = (side - h) // 2, (side - w) // 2
    return np.ascontiguousarray(img[top : top + h, left : left + w])


def _clear_face(finder, label, h, w, seed):
    """The first synthetic face from `seed` on (by steps of 1000) in which the face finder sees
    one face scoring clearly over its threshold, so the browser and Python cannot disagree."""
    for s in range(seed, seed + 20000, 1000):
        img = _face(label, h, w, s)
        found = finder.find(img)
        if len(found.faces) == 1 and not found.too_small and found.faces[0].score >= finder.contract.min_score + MIN_SCORE_MARGIN:
            return img
    raise RuntimeError(f"no synthetic face from seed {seed} is found clearly; the face finder changed")


def scene(h: int, w: int, seed: int):
    """A landscape without a face: sky, sun, hills and trees, with a little noise."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    yy = np.linspace(0, 1, h)[:, None, None]
    top, bottom = rng.integers(90, 200, 3), rng.integers(150, 255, 3)
    img = Image.fromarray(np.broadcast_to(top + (bottom - top) * yy, (h, w, 3)).astype(np.uint8))
    d = ImageDraw.Draw(img)
    r = int(min(h, w) * rng.uniform(0.06, 0.1))
    cx, cy = int(w * rng.uniform(0.15, 0.85)), int(h * rng.uniform(0.1, 0.3))
    d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(250, 220, 120))
    for layer in range(3):
        base = h * (0.45 + 0.15 * layer)
        pts = [(0, h)] + [(x, base + rng.uniform(-0.12, 0.12) * h) for x in np.linspace(0, w, 9)] + [(w, h)]
        d.polygon(pts, fill=tuple(int(v) for v in rng.integers(30, 140, 3) // (layer + 1)))
    for _ in range(12):
        x, y, s = int(rng.uniform(0, w)), int(rng.uniform(0.55 * h, h)), int(rng.uniform(8, 30))
        d.rectangle([x, y - 3 * s, x + s // 3, y], fill=(60, 40, 20))
        d.ellipse([x - s, y - 5 * s, x + s, y - 2 * s], fill=tuple(int(v) for v in rng.integers(20, 120, 3)))
    arr = np.asarray(img).astype(np.float32) + rng.normal(0, 4, (h, w, 3))
    return np.clip(arr, 0, 255).astype(np.uint8)


def _faces_v1(source: str, label: str, index: int):
    import csv

    import numpy as np
    from PIL import Image

    manifest = FACES_V1 / "manifest.csv"
    if not manifest.exists():
        raise FileNotFoundError(f"{manifest} is missing: the group photos paste faces-v1 files (set UNMASK_FACES_V1 to its folder)")
    with open(manifest, newline="") as f:
        paths = sorted(r["path"] for r in csv.DictReader(f) if r["source"] == source and r["label"] == label)
    return np.asarray(Image.open(FACES_V1 / paths[index]).convert("RGB"))


def group(h: int, w: int, seed: int, people: list):
    import numpy as np
    from PIL import Image

    img = scene(h, w, seed).copy()
    for source, label, index, (x, y, side) in people:
        face = Image.fromarray(_faces_v1(source, label, index)).resize((side, side), Image.BICUBIC)
        img[y:y + side, x:x + side] = np.asarray(face)
    return img


def images(root: Path) -> dict:
    from models.faces import FaceFinder

    finder = FaceFinder()
    root = Path(root)
    for folder, names in (("site/img", FEED), ("cdn", CDN), ("other", OTHER)):
        for name, (label, h, w, seed) in names.items():
            write_image(root / folder / name, _clear_face(finder, label, h, w, seed))
    for folder, names in SCENES.items():
        for name, (h, w, seed) in names.items():
            found = finder.find(img := scene(h, w, seed))
            assert not found.faces and not found.too_small, f"{name} shows a face to the finder: pick another seed"
            write_image(root / folder / name, img)
    for name, (h, w, seed, people) in GROUPS.items():
        found = finder.find(img := group(h, w, seed, people))
        assert len(found.faces) == len(people), f"{name}: the finder sees {len(found.faces)} faces, not {len(people)}"
        assert min(f.score for f in found.faces) >= finder.contract.min_score + MIN_SCORE_MARGIN, f"{name}: a face is found only just"
        write_image(root / "site/img" / name, img)
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
        "scenes": sorted(n for names in SCENES.values() for n in names),
        "groups": {n: len(v[3]) for n, v in GROUPS.items()},
        "labels": {n: v[0] for n, v in {**FEED, **CDN, **OTHER}.items()},
        "inline_data_url": "data:image/png;base64," + base64.b64encode((site / "inline.png").read_bytes()).decode(),
    }
    (root / "index.json").write_text(json.dumps(index, indent=1))
    return index


def expect(keras_dir: Path, images_root: Path, out: Path) -> dict:
    """Python's answer for every fixture file, as `unmask predict` reads it (refusals included):
    {path below ROOT: models.inference result | {"error": "reason: message"}}."""
    from models.detector import Detector
    from models.inference import FaceCheck
    from training.scoring import _load, find_images

    check = FaceCheck(Detector.load(str(keras_dir)))
    root = Path(images_root)
    files, _ = find_images(root)
    answers = {}
    for path in files:
        image, err, _ = _load(path)
        rel = path.relative_to(root).as_posix()
        answers[rel] = {"error": f"{err[0]}: {err[1]}"} if err else check.check_image(image)
    Path(out).write_text(json.dumps(answers, indent=1))
    return {"files": len(answers)}


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
    from models.inference import FaceCheck
    from models.preprocessing import load_image

    out = Path(out)
    keras_dir = out / "keras"
    keras.utils.set_random_seed(0)
    det = Detector(architectures.build_tiny(), "tiny", Calibration(), {"name": "tiny", "version": "extension-test"})
    det.save(keras_dir)
    root = Path(images_root)
    files = [root / "site/img" / n for n in FEED] + [root / "cdn" / n for n in CDN] + [root / "other" / n for n in OTHER]
    check = FaceCheck(det)
    raw = [f["p_fake_raw"] for p in files for f in check.check_image(load_image(p))["faces"]]
    real_t, fake_t, margin = _gap_thresholds(raw)
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
    elif what == "expect":
        print(json.dumps(expect(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))))
    elif what == "devmodel":
        print(json.dumps(devmodel(Path(sys.argv[2]), Path(sys.argv[3]))))
    else:
        sys.exit(f"unknown command {what}; use images, expect or devmodel")
