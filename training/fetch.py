"""Rebuild a data folder from the public origins its manifest names (`unmask data fetch`).

Each manifest row names its origin as OWNER/REPOSITORY@COMMIT:PATH (a file of a public GitHub
repository at one commit). The file is downloaded, normalised as the data card says (decoded
with EXIF orientation applied, RGB, centred square crop, 256 x 256 bicubic, JPEG quality 90)
and its SHA-256 compared with the manifest's. Only an explicit command does this: nothing in
Unmask downloads at run time.
"""
from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FACES_V1 = REPO / "docs" / "data" / "faces-v1"  # the data card (README.md) and manifest.csv
# GitHub serves a file of any commit here, Git LFS files included (it redirects to them).
ORIGIN_URL = "https://github.com/{repository}/raw/{commit}/{path}"
SIDE = 256
JPEG_QUALITY = 90
MAX_DOWNLOAD_BYTES = 50 * 1024 * 1024  # no origin file comes near it; a larger answer is not an image we want
TIMEOUT_S = 60


class FetchError(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def parse_origin(origin: str) -> tuple[str, str, str]:
    """OWNER/REPOSITORY@COMMIT:PATH -> (repository, commit, path)."""
    repository, at, rest = origin.partition("@")
    commit, colon, path = rest.partition(":")
    if not (at and colon and repository.count("/") == 1 and commit and path) or ".." in Path(path).parts:
        raise FetchError("bad_origin", f"origin {origin!r} is not OWNER/REPOSITORY@COMMIT:PATH")
    return repository, commit, path


def origin_url(origin: str, template: str = ORIGIN_URL) -> str:
    repository, commit, path = parse_origin(origin)
    return template.format(repository=repository, commit=commit, path=urllib.parse.quote(path))


def download(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            data = response.read(MAX_DOWNLOAD_BYTES + 1)
    except urllib.error.HTTPError as e:
        raise FetchError("http_error", f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        raise FetchError("unreachable", f"{url}: {getattr(e, 'reason', e)}") from None
    if len(data) > MAX_DOWNLOAD_BYTES:
        raise FetchError("too_large", f"{url}: over {MAX_DOWNLOAD_BYTES // 2**20} MB")
    return data


def normalise(data: bytes) -> bytes:
    """The data card's normalisation of one downloaded file, as JPEG bytes."""
    from PIL import Image

    from models.preprocessing import ImageError, load_image

    try:
        rgb = load_image(data)  # refuses what is not an image, truncated files and decompression bombs
    except ImageError as e:
        raise FetchError(e.reason, str(e)) from None
    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = Image.fromarray(rgb[top:top + side, left:left + side]).resize((SIDE, SIDE), Image.BICUBIC)
    buf = io.BytesIO()
    square.save(buf, "JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_manifest(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    missing = {"path", "origin", "sha256"} - set(rows[0] if rows else ())
    if missing:
        raise ValueError(f"{path} has no {', '.join(sorted(missing))} column: not a manifest to fetch from")
    for r in rows:
        if Path(r["path"]).is_absolute() or ".." in Path(r["path"]).parts:
            raise ValueError(f"{path}: row path {r['path']!r} leaves the data folder")
    return rows


def fetch_one(row: dict, out: Path, template: str, keep_different: bool) -> str:
    """"kept" (already there), "ok", "different" (kept only with keep_different), or raises FetchError."""
    dest = out / row["path"]
    if dest.is_file() and sha256(dest.read_bytes()) == row["sha256"]:
        return "kept"
    image = normalise(download(origin_url(row["origin"], template)))
    same = sha256(image) == row["sha256"]
    if same or keep_different:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        tmp.write_bytes(image)
        tmp.replace(dest)  # atomic: a stopped fetch leaves no half-written image
    return "ok" if same else "different"


def fetch(out, *, manifest: Path = FACES_V1 / "manifest.csv", template: str = ORIGIN_URL, sources=None,
          keep_different: bool = False, workers: int = 4, progress: bool = True) -> dict:
    """Fetch every row of `manifest` (of `sources` only, if given) into `out`; copies the
    manifest (and the data card beside it) there, so that `out` is a data folder. Returns
    {"counts": {outcome: n}, "problems": [(path, reason, message)]}."""
    from tqdm import tqdm

    out = Path(out).expanduser()
    rows = read_manifest(Path(manifest))
    if sources:
        unknown = set(sources) - {r.get("source") for r in rows}
        if unknown:
            raise ValueError(f"no source {', '.join(sorted(unknown))} in {manifest}")
        rows = [r for r in rows if r.get("source") in sources]
    rows = list({r["path"]: r for r in reversed(rows)}.values())[::-1]  # a path listed twice is fetched once
    out.mkdir(parents=True, exist_ok=True)
    counts, problems = {}, []

    def one(row):
        try:
            return row, fetch_one(row, out, template, keep_different), None
        except FetchError as e:
            return row, e.reason, str(e)

    bar = tqdm(total=len(rows), desc="fetching", unit="img", file=sys.stderr, disable=not progress)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for row, outcome, message in pool.map(one, rows):
            counts[outcome] = counts.get(outcome, 0) + 1
            if message:
                problems.append((row["path"], outcome, message))
            elif outcome == "different":
                problems.append((row["path"], "different", "normalised file's SHA-256 is not the manifest's"
                                 + (" (kept)" if keep_different else "")))
            bar.update()
    bar.close()
    shutil.copyfile(manifest, out / "manifest.csv")
    card = Path(manifest).with_name("README.md")
    if card.is_file():
        shutil.copyfile(card, out / "README.md")
    if problems:
        with open(out / "fetch-problems.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["path", "reason", "message"])
            w.writerows(problems)
    elif (out / "fetch-problems.csv").exists():
        os.remove(out / "fetch-problems.csv")
    return {"counts": counts, "problems": problems}
