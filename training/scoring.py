"""Scoring many files: batches of prepared images through a detector (score_files, for
evaluation and calibration) and of pictures through FaceCheck with their provenance (check_files,
for `unmask predict`)."""
from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"}
COLUMNS = ["path", "p_fake", "verdict", "faces", "confidence", "p_fake_raw", "provenance", "error"]


@dataclass
class Scored:
    """One file's outcome: the raw p(fake) (and the members' for an ensemble), or an error."""

    index: int
    p_raw: float | None = None
    members: np.ndarray | None = None
    error_reason: str | None = None
    error: str | None = None


def _load_prepared(detector, source, transform, crop=None):
    from models.preprocessing import ImageError, load_image
    from training.facecrops import apply_crop

    try:
        if not isinstance(source, (bytes, bytearray)) and Path(source).is_file() and Path(source).stat().st_size == 0:
            return None, ("empty", "the file is empty (0 bytes)")
        image = apply_crop(load_image(source), crop)
        if transform is not None:
            image = transform(image)
        return detector.prepare(image), None
    except ImageError as e:
        return None, (e.reason, str(e))
    except Exception as e:  # noqa: BLE001  one strange file must not stop the run
        return None, ("error", f"{type(e).__name__}: {e}")


def score_files(detector, sources: list, *, transform: Callable | None = None, batch_size: int = 32,
                workers: int = 2, progress: bool = True, desc: str = "scoring", crops: list | None = None) -> Iterator[Scored]:
    """Raw scores for image files (paths or bytes), in order, read and prepared by
    `workers` threads while the model scores the previous batch. `crops` (one (x, y, side)
    or None per source, training/facecrops.py) cut each image to its face first; `transform`
    (uint8 -> uint8) is then applied, e.g. a web degradation."""
    from tqdm import tqdm

    bar = tqdm(total=len(sources), desc=desc, unit="img", file=sys.stderr, disable=not progress, leave=False)
    ahead = 2 * batch_size  # prepared images waiting at most: bounds memory on big folders
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures, next_i = {}, 0

        def fill():
            nonlocal next_i
            while next_i < len(sources) and len(futures) < ahead:
                futures[next_i] = pool.submit(_load_prepared, detector, sources[next_i], transform,
                                              crops[next_i] if crops is not None else None)
                next_i += 1

        start = 0
        try:
            while start < len(sources):
                fill()
                stop = min(start + batch_size, len(sources))
                results = [futures.pop(i).result() for i in range(start, stop)]
                fill()  # keep the threads busy while the model runs
                good = [i for i, (x, _) in enumerate(results) if x is not None]
                p, members = (detector.raw_scores(np.stack([results[i][0] for i in good]), batch_size=batch_size)
                              if good else (np.zeros(0), None))
                where = {i: k for k, i in enumerate(good)}
                for i, (x, err) in enumerate(results):
                    if x is None:
                        yield Scored(start + i, error_reason=err[0], error=err[1])
                    else:
                        k = where[i]
                        yield Scored(start + i, float(p[k]), None if members is None else members[k])
                bar.update(stop - start)
                start = stop
        finally:
            for f in futures.values():
                f.cancel()
            bar.close()


def find_images(folder) -> tuple[list[Path], int]:
    """Image files below `folder` (sorted), and how many other files were passed over."""
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"no such folder: {folder}")
    if not folder.is_dir():
        raise ValueError(f"{folder} is a file; give the folder that holds the images (or use `unmask check FILE`)")
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    return images, len(files) - len(images)


def decode(data: bytes):
    """(image, None) or (None, (reason, message)) for one file's bytes: every consumer that
    reads files in bulk (`unmask predict`, `unmask scan`) refuses a bad file alike."""
    from models.inference import require_size
    from models.preprocessing import ImageError, load_image

    try:
        if not data:
            return None, ("empty", "the file is empty (0 bytes)")
        image = load_image(data)
        require_size(image)
        return image, None
    except ImageError as e:
        return None, (e.reason, str(e))
    except Exception as e:  # noqa: BLE001  one strange file must not stop the run
        return None, ("error", f"{type(e).__name__}: {e}")


def _load(source):
    try:
        data = Path(source).read_bytes()
    except OSError as e:
        return None, ("unreadable", f"Cannot open {source}: {e.strerror or e}."), None
    return (*decode(data), data)


def judge(data: bytes, image, result):
    """FaceCheck's result for a picture with the file's provenance combined in."""
    from models.provenance import judged
    from server.uploads import sniff as kind_of

    return judged(result, data, kind_of(data) or "unknown", image)


def predict_row(path: str, result: dict | None, err: tuple | None) -> dict:
    """One row of `unmask predict` (COLUMNS): a judged result, or the (reason, message) of a
    file that could not be read."""
    if err is not None:
        return {"path": path, "p_fake": "", "verdict": "error", "faces": "", "confidence": "", "p_fake_raw": "",
                "provenance": "", "error": f"{err[0]}: {err[1]}"}
    blank = result["model_verdict"]["verdict"] == "no_face"
    return {"path": path, "p_fake": "" if blank else result["p_fake"], "verdict": result["verdict"],
            "faces": len(result["faces"]), "confidence": "" if result["confidence"] is None else result["confidence"],
            "p_fake_raw": "" if blank else result["p_fake_raw"], "provenance": result["provenance"]["tier"] or "",
            "error": ""}


def check_files(check, sources: list, *, batch_size: int = 32, workers: int = 2, progress: bool = True,
                desc: str = "checking") -> Iterator[tuple[int, dict | None, tuple | None]]:
    """(index, result, None) or (index, None, (reason, message)) for each file, in order:
    files are decoded by `workers` threads while the previous batch is checked; each result
    has the file's provenance combined in."""
    from tqdm import tqdm

    bar = tqdm(total=len(sources), desc=desc, unit="img", file=sys.stderr, disable=not progress, leave=False)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        try:
            for start in range(0, len(sources), batch_size):
                loaded = list(pool.map(_load, sources[start:start + batch_size]))
                good = [i for i, (im, _, _) in enumerate(loaded) if im is not None]
                results = check.check_images([loaded[i][0] for i in good])
                judged = dict(zip(good, pool.map(judge, [loaded[i][2] for i in good], [loaded[i][0] for i in good], results)))
                for i, (im, err, _) in enumerate(loaded):
                    yield (start + i, judged[i], None) if im is not None else (start + i, None, err)
                bar.update(len(loaded))
        finally:
            bar.close()


