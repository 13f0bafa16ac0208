"""One on-disk cache for results that cost a model call per file (the face crops of
training/facecrops.py, the face landmarks of training/sbi.py): load it, compute what is
missing in batches, write it whole and atomically, so that a run stopped halfway leaves the
old cache intact. A .json file holds any JSON values; a .npz file holds arrays of one shape."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def load(file: Path) -> dict:
    if not file.is_file():
        return {}
    if file.suffix == ".npz":
        with np.load(file) as z:  # "keys" and one array of values (its name aside: older caches say "points")
            return dict(zip(z["keys"].tolist(), z[next(n for n in z.files if n != "keys")]))
    return json.loads(file.read_text())


def save(file: Path, cache: dict) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(file.stem + ".tmp" + file.suffix)
    if file.suffix == ".npz":
        np.savez(tmp, keys=np.array(list(cache), dtype=str), values=np.stack(list(cache.values())))
    else:
        tmp.write_text(json.dumps(cache))
    tmp.replace(file)  # atomic


def fill(file: Path, keys: list, compute, *, batch: int, desc: str, progress: bool = True) -> dict:
    """The cache in `file` (key -> value) with every key of `keys` it lacked computed:
    compute(indexes) -> {index: value}, for up to `batch` indexes of `keys` at a time. A key
    that is None, or an index that compute leaves out (a file it cannot read now), is not cached."""
    cache = load(file)
    todo = [i for i, k in enumerate(keys) if k is not None and k not in cache]
    if not todo:
        return cache
    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc=desc, unit="img", file=sys.stderr, disable=not progress, leave=False)
    for start in range(0, len(todo), batch):
        chunk = todo[start:start + batch]
        for i, value in compute(chunk).items():
            cache[keys[i]] = value
        bar.update(len(chunk))
    bar.close()
    save(file, cache)
    return cache
