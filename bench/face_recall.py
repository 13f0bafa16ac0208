"""Face recall: which faces the search finds and judges, by face size and position.

Composed scenes: faces-v1 photos (tight face crops of real people; generated faces without
the data set) pasted at 48-400 px into scikit-image's photos (coffee, rocket, a cat) resized
to 1200x800, at nine places (corners, edges, centre). A face counts as found when a judged
face's box centre lies inside the pasted square. Measured with the contract as it is
(whole view, padded view, then tiles for a large picture without a face) and with the tiles
turned off (the search before issue 20), plus the time of the face search on a 1200x800
photo without a face, the case that pays for every look.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from bench.common import say, summary, timed

SECTION = "face-recall"
SIZES = (48, 64, 86, 96, 128, 160, 200, 256, 320, 400)
WIDTH, HEIGHT = 1200, 800


def _faces(data: Path | None, n: int) -> list[np.ndarray]:
    from PIL import Image

    if data is not None:
        picks = []
        for folder in ("stylegan1-ffhq/real", "dfdc/real", "yonsei-photoshop/real"):
            picks += sorted((data / folder).glob("*.jpg"))[: max(1, n // 3)]
        return [np.asarray(Image.open(p).convert("RGB")) for p in picks[:n]]
    from tests.synthetic import face_image

    return [face_image("real", 256, seed) for seed in range(n)]


def _backgrounds() -> dict:
    from skimage import data

    return {"coffee": data.coffee(), "rocket": data.rocket(), "cat": data.chelsea()}


def _places(side: int) -> list[tuple[int, int]]:
    """Nine places for a square of `side`: 4% in from each edge, and centred."""
    xs = (round(0.04 * WIDTH), (WIDTH - side) // 2, WIDTH - side - round(0.04 * WIDTH))
    ys = (round(0.04 * HEIGHT), (HEIGHT - side) // 2, HEIGHT - side - round(0.04 * HEIGHT))
    return [(x, y) for y in ys for x in xs]


PLACE_NAMES = ["top left", "top", "top right", "left", "centre", "right", "bottom left", "bottom", "bottom right"]


def measure(smoke: bool, data: Path | None) -> dict:
    from models.faces import FaceFinder, face_contract
    from tests.synthetic import paste_scene

    contract = face_contract()
    finders = {"tiles": FaceFinder(c=contract), "no_tiles": FaceFinder(c=dataclasses.replace(contract, tile_side=0))}
    faces = _faces(data, 2 if smoke else 6)
    backgrounds = _backgrounds()
    if smoke:
        backgrounds = dict(list(backgrounds.items())[:1])
    sizes = (48, 96, 200) if smoke else SIZES
    hits = {k: {s: [0] * 9 for s in sizes} for k in finders}
    box_sides = {s: [] for s in sizes}  # the found face's box side, for each pasted side
    trials = {s: 0 for s in sizes}
    for s in sizes:
        for bg in backgrounds.values():
            for face in faces:
                for p, (x, y) in enumerate(_places(s)):
                    picture = paste_scene([(face, x, y, s)], WIDTH, HEIGHT, backdrop=bg)
                    if p == 0:
                        trials[s] += 1
                    for name, finder in finders.items():
                        found = finder.find(picture)
                        match = [f for f in found.faces
                                 if x <= (f.box[0] + f.box[2]) / 2 <= x + s and y <= (f.box[1] + f.box[3]) / 2 <= y + s]
                        hits[name][s][p] += int(bool(match))
                        if match and name == "tiles":
                            box_sides[s].append(match[0].side)
        say(SECTION, f"{s} px: found {sum(hits['tiles'][s])}/{9 * trials[s]} with tiles, "
                     f"{sum(hits['no_tiles'][s])}/{9 * trials[s]} without")
    recall = {name: {str(s): round(sum(h[s]) / (9 * trials[s]), 3) for s in sizes} for name, h in hits.items()}
    by_place = {name: {PLACE_NAMES[p]: round(sum(h[s][p] for s in sizes) / sum(trials.values()), 3) for p in range(9)}
                for name, h in hits.items()}
    smallest = {name: next((int(s) for s in map(str, sizes) if all(r[str(t)] >= 0.9 for t in sizes if t >= int(s))), None)
                for name, r in recall.items()}
    empty = paste_scene([], WIDTH, HEIGHT, backdrop=backgrounds["coffee"])
    times = {name: summary([1000 * t for t in timed(lambda f=finder: f.find(empty), 3 if smoke else 10)], p95=True)
             for name, finder in finders.items()}
    return {
        "scenes": f"{WIDTH}x{HEIGHT}: {len(faces)} faces x {len(backgrounds)} photos ({', '.join(backgrounds)}) x 9 places per size",
        "faces_from": "faces-v1 reals (FFHQ, DFDC, Photoshop set)" if data is not None else "tests/synthetic.face_image",
        "sizes_px": list(sizes),
        "recall": recall,
        "median_box_side_px": {str(s): round(float(np.median(v)), 1) if v else None for s, v in box_sides.items()},
        "recall_by_place": by_place,
        "smallest_side_found_90pct": smallest,
        "no_face_search_ms": times,
        "tile_side": contract.tile_side,
    }
