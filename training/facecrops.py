"""The face crop of every training and evaluation image, found once and remembered.

Training and evaluation judge the same crop that inference judges (models/faces.py): the
largest face of each image, by the contract in models/preprocessing.json. Finding faces costs
a model call per image, so the crops are cached on disk, keyed by the file (path, size,
modification time) and by the face contract, and a second run, or a resumed one, reads them.
An image in which no face is found is left out of training and evaluation, and counted.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from training import diskcache

BATCH = 32
UNREADABLE = "unreadable"  # not cached: the reader that decodes the file reports why


def cache_file() -> Path:
    from models.preprocessing import contract

    digest = hashlib.sha256(json.dumps(contract()["faces"], sort_keys=True).encode()).hexdigest()[:16]
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "unmask" / "crops" / f"faces-{digest}.json"


def file_key(path: str) -> str:
    """A file as the caches know it: path, size, modification time (a changed file is found again)."""
    st = os.stat(path)
    return f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}"


def face_crops(paths: list[str], progress: bool = True) -> list:
    """(x, y, side) of the largest judged face of each image, None where there is none, or
    UNREADABLE where the file cannot be read now. Cached; missing entries are found in batches."""
    from models.preprocessing import ImageError, load_image

    keys = []
    for p in paths:
        try:
            keys.append(file_key(p))
        except OSError:
            keys.append(None)
    unreadable, finder = set(), []

    def find(indexes) -> dict:
        if not finder:
            from models.faces import FaceFinder

            finder.append(FaceFinder())
        batch, images = [], []
        for i in indexes:
            try:
                images.append(load_image(paths[i]))
                batch.append(i)
            except ImageError:
                unreadable.add(i)
        return {i: list(found.faces[0].crop) if found.faces else None for i, found in zip(batch, finder[0].find_batch(images))}

    cache = diskcache.fill(cache_file(), keys, find, batch=BATCH, desc="finding faces", progress=progress)
    return [UNREADABLE if k is None or i in unreadable else tuple(cache[k]) if cache[k] else None
            for i, k in enumerate(keys)]


def with_faces(samples: list, progress: bool = True) -> tuple[list, list, list]:
    """(samples with a face, their crops, samples without one). An unreadable file is kept,
    without a crop, so that whoever reads it next reports its error."""
    crops = face_crops([s.path for s in samples], progress)
    kept = [(s, None if c == UNREADABLE else c) for s, c in zip(samples, crops) if c is not None]
    lost = [s for s, c in zip(samples, crops) if c is None]
    return [s for s, _ in kept], [c for _, c in kept], lost


def apply_crop(image: np.ndarray, crop) -> np.ndarray:
    """The crop of an image, or the image where no crop is given. A crop that no longer fits
    (the file changed) is clipped to the image."""
    from models.faces import crop_image

    if crop is None or crop == UNREADABLE:
        return image
    return crop_image(image, crop)
