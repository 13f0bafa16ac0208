"""Face stability: how far one face's p(fake) moves when the same face is shown at another
size or re-compressed (issue 20, item 8: one real face was "Likely real 97%" alone and
"leans fake 70%" at 120 px).

Each faces-v1 face photo (reals and fakes of several sources) is shown at 64-512 px, alone
(the picture is the face photo at that size) and pasted into scikit-image's coffee photo at
1200x800, each as it is and re-compressed as JPEG quality 70, and checked by each bundled
model, tiny (the device's) and the ensemble (models/inference.py FaceCheck, the server's code). Per face: the spread of its
calibrated p(fake) (max - min) over the sizes, the largest move from its p(fake) alone at
256 px, and whether its verdict changes.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from bench.common import say

SECTION = "face-stability"
SIZES = (64, 96, 128, 192, 256, 384, 512)
MODELS = ("tiny", "ensemble")  # the bundled ones
PICKS = ("dfdc/real", "stylegan1-ffhq/real", "yonsei-photoshop/real", "sd21/fake", "genphotos/fake", "stylegan1-ffhq/fake")


def _faces(data: Path | None, per_folder: int) -> list[tuple[str, np.ndarray]]:
    from PIL import Image

    if data is None:
        from tests.synthetic import face_image

        return [(f"synthetic/{label}", face_image(label, 256, i)) for i, label in enumerate(("real", "fake"))]
    out = []
    for folder in PICKS:
        for p in sorted((data / folder).glob("*.jpg"))[:per_folder]:
            out.append((f"{folder}/{p.name}", np.asarray(Image.open(p).convert("RGB"))))
    return out


def _jpeg(img: np.ndarray, quality: int = 70) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def _spread(ps: list) -> float | None:
    return round(max(ps) - min(ps), 3) if ps else None


def _median(xs: list) -> float | None:
    return round(float(np.median(xs)), 3) if xs else None


def stability(check, faces: list, sizes) -> dict:
    """One detector's figures: per face, its p(fake) at every size, alone and in a scene, as is
    and as JPEG 70, and how far it moves."""
    from PIL import Image
    from skimage import data as skdata

    from tests.synthetic import paste_scene

    rows = {}
    for name, face in faces:
        shown = {}
        for s in sizes:
            alone = np.asarray(Image.fromarray(face).resize((s, s), Image.BILINEAR))
            x, y = (1200 - s) // 2, (800 - s) // 2
            scene = paste_scene([(face, x, y, s)], 1200, 800, backdrop=skdata.coffee())
            for where, picture, inside in (("alone", alone, (0, 0, s, s)), ("scene", scene, (x, y, x + s, y + s))):
                for codec, pic in (("as is", picture), ("jpeg70", _jpeg(picture))):
                    r = check.check_image(pic)
                    hit = [f for f in r["faces"] if inside[0] <= (f["box"][0] + f["box"][2]) / 2 <= inside[2]
                           and inside[1] <= (f["box"][1] + f["box"][3]) / 2 <= inside[3]]
                    shown[f"{where} {s} {codec}"] = (hit[0]["p_fake"], hit[0]["verdict"]) if hit else None
        found = {k: v for k, v in shown.items() if v}
        ps = [v[0] for v in found.values()]
        ref = shown.get("alone 256 as is")
        spread = lambda where: _spread([v[0] for k, v in found.items() if k.startswith(where)])  # noqa: E731
        rows[name] = {
            "found": f"{len(found)}/{len(shown)}",
            "p_fake": {k: (round(v[0], 3) if v else None) for k, v in shown.items()},
            "spread": _spread(ps),
            "spread_alone": spread("alone"),
            "spread_scene": spread("scene"),
            "largest_move_from_alone_256": round(max(abs(p - ref[0]) for p in ps), 3) if ref and ps else None,
            "verdicts": sorted({v[1] for v in found.values()}),
        }
        say(SECTION, f"{check.detector.name}: {name}: spread {rows[name]['spread']}, verdicts {rows[name]['verdicts']} ({rows[name]['found']} found)")
    spreads = [r["spread"] for r in rows.values() if r["spread"] is not None]
    median = lambda key: _median([r[key] for r in rows.values() if r[key] is not None])  # noqa: E731
    return {
        "version": check.detector.version,
        "faces": rows,
        "median_spread": median("spread"),
        "median_spread_alone": median("spread_alone"),
        "median_spread_scene": median("spread_scene"),
        "max_spread": round(max(spreads), 3) if spreads else None,
        "faces_whose_verdict_changes": sum(len(r["verdicts"]) > 1 for r in rows.values()),
    }


def measure(smoke: bool, data: Path | None) -> dict:
    from models.detector import Detector
    from models.inference import FaceCheck

    faces = _faces(data, 1 if smoke else 2)[: 2 if smoke else None]
    sizes = (96, 256) if smoke else SIZES
    # Both bundled models: the device's (tiny, in the extension) and the server's.
    return {
        "sizes_px": list(sizes),
        "models": {name: stability(FaceCheck(Detector.load(name)), faces, sizes) for name in MODELS},
        "how": "each face photo resized (bilinear) to each size, alone and pasted into coffee at 1200x800, as is and "
               "as JPEG q70; p(fake) of the judged face whose box centre lies in the pasted square. Alone, only the size "
               "and the compression change; in the scene, the judged crop (1.6 times the face box) also holds coffee "
               "and the pasted photo's straight edges, a splice that no real photo of a face has",
    }
