"""Reading a data folder into labelled samples, validating every file, and splitting them.

Three layouts are understood (`load_dataset` finds out which):
- "manifest": a folder with manifest.csv (path,label,source,group), such as faces-v1;
- "folders": any folder with real/ and fake/ below it, at any depth;
- "videos": a DFDC-style folder of videos with metadata.json. Faces are cropped from sampled
  frames (models/video.py, models/faces.py) and written as image files into a cache folder.

Bad files never stop a run: each is skipped with a reason and listed in the summary.
Label 1 means fake, 0 means real, everywhere.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from models.preprocessing import MIN_SHORT_SIDE, ImageError, load_image

LABELS = {"real": 0, "fake": 1}
LABEL_NAMES = {0: "real", 1: "fake"}
VIDEO_SUFFIXES = {".mp4", ".webm", ".mov", ".avi", ".mkv", ".m4v"}
SPLIT_NAMES = ("train", "val", "test")
SPLIT_FILE = "split.json"
# "clip_frame012.jpg", "clip-frame-3.png", "clip_f12.jpg": frames of one clip share a group.
# Plain numbering ("img_0001.jpg") does not: those are separate pictures.
FRAME_NAME = re.compile(r"^(?P<clip>.+?)[_-](?:frame|f)[_-]?\d+$", re.IGNORECASE)


@dataclass(frozen=True)
class Sample:
    path: str  # absolute
    label: int  # 1 = fake, 0 = real
    source: str
    group: str  # samples of one group always land in the same split


@dataclass
class Skipped:
    path: str
    # Images: unreadable, empty, truncated, corrupt, not_an_image, unsupported, too_small,
    # too_many_pixels, duplicate, conflicting_label. Listings: missing, bad_label, bad_row,
    # unlabelled. Videos: no_face (one frame), or models.video.VideoError's reason.
    reason: str
    message: str


@dataclass
class Dataset:
    root: Path
    layout: str  # "manifest" | "folders" | "videos"
    samples: list[Sample]
    skipped: list[Skipped] = field(default_factory=list)

    def summary(self) -> dict:
        counts: dict[str, dict[str, int]] = defaultdict(lambda: {"real": 0, "fake": 0})
        for s in self.samples:
            counts[s.source][LABEL_NAMES[s.label]] += 1
        labels = Counter(LABEL_NAMES[s.label] for s in self.samples)
        return {
            "root": str(self.root),
            "layout": self.layout,
            "total": len(self.samples),
            "labels": {"real": labels.get("real", 0), "fake": labels.get("fake", 0)},
            "groups": len({s.group for s in self.samples}),
            "counts": {src: counts[src] for src in sorted(counts)},
            "skipped": dict(sorted(Counter(s.reason for s in self.skipped).items())),
            "skipped_files": [{"path": s.path, "reason": s.reason, "message": s.message} for s in self.skipped],
        }

    def format_summary(self, max_listed: int = 20) -> str:
        s = self.summary()
        lines = [f"Data: {s['root']} (layout: {s['layout']})", f"  {'source':<24}{'real':>8}{'fake':>8}{'total':>8}"]
        for src, c in s["counts"].items():
            lines.append(f"  {src:<24}{c['real']:>8}{c['fake']:>8}{c['real'] + c['fake']:>8}")
        lines.append(f"  {'all':<24}{s['labels']['real']:>8}{s['labels']['fake']:>8}{s['total']:>8}   ({s['groups']} groups)")
        n_skipped = len(self.skipped)
        if n_skipped:
            by_reason = ", ".join(f"{r}: {n}" for r, n in s["skipped"].items())
            lines.append(f"  skipped {n_skipped} file(s): {by_reason}")
            for sk in self.skipped[:max_listed]:
                lines.append(f"    {sk.reason:<18}{_short(sk.path, self.root)}: {sk.message}")
            if n_skipped > max_listed:
                lines.append(f"    ... and {n_skipped - max_listed} more (`unmask train` lists all in RUN_DIR/data.json)")
        else:
            lines.append("  skipped: none")
        return "\n".join(lines)


class DatasetError(ValueError):
    """A data folder that cannot be used at all; the message says what to do."""


def _absolute(path) -> Path:
    """Absolute and normalised, without resolving symlinks (paths stay below the data root)."""
    return Path(os.path.abspath(Path(path).expanduser()))


REPO = Path(__file__).resolve().parents[1]


def recorded(path) -> str:
    """A path as split.json, metrics.json and model cards record it: relative to the
    repository when it lies in or beside the checkout (../shared/data/faces-v1), so that the
    record holds in a checkout elsewhere; absolute when it lies elsewhere (/tmp/...)."""
    p = _absolute(path)
    return os.path.relpath(p, REPO) if p.is_relative_to(REPO.parent) else str(p)


def from_record(path) -> Path:
    """A recorded path back to a folder on this machine: a relative one is relative to the repository."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else _absolute(REPO / p)


def _short(path: str, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return path


def parse_label(value) -> int | None:
    v = str(value).strip().lower()
    if v in ("fake", "1", "synthetic", "manipulated"):
        return 1
    if v in ("real", "0", "original", "pristine"):
        return 0
    return None


# --- reading ------------------------------------------------------------------------------
def load_dataset(root, *, min_short_side: int = MIN_SHORT_SIDE, validate: bool = True, frames_per_video: int = 8,
                 cache_dir=None, progress: bool = True) -> Dataset:
    """Read a data folder in any of the three layouts, validating every image unless
    `validate` is False (then files are only listed: used to re-read a known split)."""
    root = _absolute(root)
    if not root.exists():
        raise DatasetError(f"data folder {root} does not exist; pass --data a folder of real/ and fake/ images, "
                           "a folder with manifest.csv, or a folder of videos with metadata.json")
    if not root.is_dir():
        raise DatasetError(f"{root} is a file, not a folder; pass the folder that holds the images")

    skipped: list[Skipped] = []
    if (root / "manifest.csv").is_file():
        layout, candidates = "manifest", _read_manifest(root, skipped)
    elif _metadata_files(root):
        layout = "videos"
        candidates = _read_videos(root, skipped, frames_per_video, cache_dir, progress)
    else:
        layout = "folders"
        candidates = _read_folders(root, skipped, frames_per_video, cache_dir, progress)

    if validate:
        samples = _validate(candidates, skipped, min_short_side, progress)
    else:
        samples = candidates
    samples.sort(key=lambda s: s.path)
    ds = Dataset(root, layout, samples, skipped)
    if not samples:
        reasons = ", ".join(f"{r}: {n}" for r, n in ds.summary()["skipped"].items()) or "no files found"
        raise DatasetError(f"no usable images in {root} ({layout} layout; {reasons}). "
                           + ("Check the files listed in manifest.csv." if layout == "manifest" else
                              "Put images in real/ and fake/ folders, or add a manifest.csv."))
    return ds


def _read_manifest(root: Path, skipped: list[Skipped]) -> list[Sample]:
    path = root / "manifest.csv"
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = {c.strip().lower() for c in (reader.fieldnames or [])}
        missing = {"path", "label"} - columns
        if missing:
            raise DatasetError(f"{path} lacks the column(s) {', '.join(sorted(missing))}; "
                               "it needs a header row path,label[,source,group]")
        rows = [{(k or "").strip().lower(): (v or "").strip() for k, v in row.items()} for row in reader]
    out = []
    for i, row in enumerate(rows, start=2):
        rel = row.get("path", "")
        file = _absolute(root / rel)
        label = parse_label(row.get("label", ""))
        if not rel:
            skipped.append(Skipped(f"{path}:{i}", "bad_row", f"line {i} of manifest.csv has no path"))
        elif label is None:
            skipped.append(Skipped(str(file), "bad_label", f"label {row.get('label')!r} on line {i} is neither real nor fake"))
        elif not file.is_file():
            skipped.append(Skipped(str(file), "missing", f"listed on line {i} of manifest.csv but not found"))
        else:
            out.append(Sample(str(file), label, row.get("source") or root.name, row.get("group") or rel))
    return out


def _label_dir(parts: tuple[str, ...]) -> int | None:
    """Index of the deepest folder named real or fake in a relative path's folders."""
    for i in range(len(parts) - 2, -1, -1):
        if parts[i].lower() in LABELS:
            return i
    return None


def _read_folders(root: Path, skipped: list[Skipped], frames_per_video: int, cache_dir, progress: bool) -> list[Sample]:
    files = sorted(p for p in root.rglob("*")
                   if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts))
    out, videos = [], []
    has_label_dirs = False
    for p in files:
        parts = p.relative_to(root).parts
        i = _label_dir(parts)
        if i is None:
            continue
        has_label_dirs = True
        label = LABELS[parts[i].lower()]
        source = "/".join(parts[:i]) or root.name
        if p.suffix.lower() in VIDEO_SUFFIXES:
            videos.append((p, label, source, f"{source}/{p.name}"))
            continue
        m = FRAME_NAME.match(p.stem)
        group = f"{source}/{m['clip']}" if m else "/".join(parts)
        out.append(Sample(str(p), label, source, group))
    if not has_label_dirs:
        found = "it is empty" if not files else f"it holds {len(files)} file(s) but no real/ or fake/ folder"
        raise DatasetError(
            f"cannot read {root}: {found}. Use one of: (1) real/ and fake/ folders of images, at any depth; "
            "(2) a manifest.csv with columns path,label,source,group; "
            "(3) videos with a DFDC-style metadata.json ({\"clip.mp4\": {\"label\": \"FAKE\", \"original\": ...}})."
        )
    if videos:
        out += _faces_from_videos(videos, skipped, frames_per_video, cache_dir, progress)
    return out


def _metadata_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("metadata.json") if not any(x.startswith(".") for x in p.relative_to(root).parts))


def _read_videos(root: Path, skipped: list[Skipped], frames_per_video: int, cache_dir, progress: bool) -> list[Sample]:
    videos = []
    for meta_path in _metadata_files(root):
        folder = meta_path.parent
        try:
            meta = json.loads(meta_path.read_text())
            if not isinstance(meta, dict):
                raise ValueError("the top level is not an object")
        except (ValueError, OSError) as e:
            raise DatasetError(f"cannot read {meta_path}: {e}. It must map each video's file name to "
                               "{\"label\": \"REAL\"|\"FAKE\", \"original\": \"source.mp4\"}") from e
        listed = set()
        for name, entry in sorted(meta.items()):
            listed.add(name)
            video = folder / name
            label = parse_label(entry.get("label", "")) if isinstance(entry, dict) else None
            if label is None:
                skipped.append(Skipped(str(video), "bad_label", f"metadata.json gives no REAL/FAKE label for {name}"))
                continue
            if not video.is_file():
                skipped.append(Skipped(str(video), "missing", f"listed in {meta_path.name} but not found"))
                continue
            original = entry.get("original") if label == 1 else None
            group = str((folder / (original or name)).relative_to(root))
            videos.append((video, label, root.name, group))
        for p in sorted(folder.iterdir()):
            if p.suffix.lower() in VIDEO_SUFFIXES and p.name not in listed:
                skipped.append(Skipped(str(p), "unlabelled", f"not listed in {meta_path.relative_to(root)}"))
    return _faces_from_videos(videos, skipped, frames_per_video, cache_dir, progress)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "unmask" / "faces"


def _faces_from_videos(videos, skipped: list[Skipped], frames_per_video: int, cache_dir, progress: bool) -> list[Sample]:
    """Crop the largest face of `frames_per_video` frames of each video (the face finder and
    crop contract of models/faces.py) into image files in the cache (keyed by the video's bytes
    and the face contract, so a second run reuses them)."""
    from PIL import Image

    from models.faces import FaceFinder, crop_image
    from models.video import VideoError, sample_frames
    from training.facecrops import cache_file

    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    contract_key = cache_file().stem  # faces-<hash of the face contract>
    finder, out = None, []
    for video, label, source, group in _progress(videos, progress, "videos", "cropping faces"):
        key = hashlib.sha256(video.read_bytes()).hexdigest()[:20]
        folder = cache / f"{key}-n{frames_per_video}-{contract_key}"
        index = folder / "index.json"
        if index.exists():
            entries = json.loads(index.read_text())
        else:
            try:
                frames = sample_frames(video, frames_per_video)
            except VideoError as e:
                skipped.append(Skipped(str(video), getattr(e, "reason", "video_error"), str(e)))
                continue
            finder = finder or FaceFinder()
            folder.mkdir(parents=True, exist_ok=True)
            entries = []
            for f, found in zip(frames, finder.find_batch([f.image for f in frames])):
                if not found.faces:
                    entries.append({"frame": int(f.frame_index), "time_s": float(f.time_s), "file": None})
                    continue
                name = f"frame{int(f.frame_index):06d}.png"  # lossless: no second compression
                Image.fromarray(crop_image(f.image, found.faces[0].crop)).save(folder / name)
                entries.append({"frame": int(f.frame_index), "time_s": float(f.time_s), "file": name})
            index.write_text(json.dumps(entries))
        if not entries:
            skipped.append(Skipped(str(video), "video_error", "no frames could be read from this video"))
        for e in entries:
            if e["file"] is None:
                skipped.append(Skipped(f"{video}@{e['time_s']:.2f}s", "no_face", f"no face found in frame {e['frame']}"))
            else:
                out.append(Sample(str(folder / e["file"]), label, source, group))
    return out


def _progress(items, enabled: bool, unit: str, desc: str):
    if not enabled or not items:
        return items
    from tqdm import tqdm

    return tqdm(items, unit=f" {unit}", desc=desc, leave=False)


# --- validation ---------------------------------------------------------------------------
def _check(sample: Sample, min_short_side: int) -> tuple[Sample, str | None, Skipped | None]:
    """(sample, sha256 of its bytes, None) for a good image, or (sample, None, why not)."""
    try:
        data = Path(sample.path).read_bytes()
    except OSError as e:
        return sample, None, Skipped(sample.path, "unreadable", f"cannot read: {e.strerror or e}")
    if not data:
        return sample, None, Skipped(sample.path, "empty", "the file is empty (0 bytes)")
    try:
        load_image(data, min_short_side=min_short_side)
    except ImageError as e:
        if e.reason == "not_an_image" and _image_magic(data):
            # It starts like an image but Pillow cannot parse it: damaged, not foreign.
            message = f"starts like a {_image_magic(data)} file but its data is damaged"
            return sample, None, Skipped(sample.path, "corrupt", message)
        return sample, None, Skipped(sample.path, e.reason, str(e))
    return sample, hashlib.sha256(data).hexdigest(), None


def _image_magic(data: bytes) -> str | None:
    signatures = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG", b"GIF8": "GIF", b"BM": "BMP"}
    for magic, name in signatures.items():
        if data.startswith(magic):
            return name
    return "WebP" if data[:4] == b"RIFF" and data[8:12] == b"WEBP" else None


def _validate(candidates: list[Sample], skipped: list[Skipped], min_short_side: int, progress: bool) -> list[Sample]:
    """Decode every image in parallel (Pillow releases the GIL), then drop exact duplicates:
    the same bytes twice with one label keeps the first path; under both labels, none."""
    workers = min(8, (os.cpu_count() or 2) * 2)
    by_hash: dict[str, list[Sample]] = defaultdict(list)
    with ThreadPoolExecutor(workers) as pool:
        results = pool.map(lambda s: _check(s, min_short_side), candidates)
        for sample, digest, bad in _progress_iter(results, len(candidates), progress):
            if bad:
                skipped.append(bad)
            else:
                by_hash[digest].append(sample)
    out = []
    for copies in by_hash.values():
        copies.sort(key=lambda s: s.path)
        if len({s.label for s in copies}) > 1:
            names = ", ".join(Path(s.path).name for s in copies)
            message = f"the same image is labelled both real and fake ({names}); all copies dropped"
            skipped += [Skipped(s.path, "conflicting_label", message) for s in copies]
            continue
        out.append(copies[0])
        skipped += [Skipped(s.path, "duplicate", f"same bytes as {copies[0].path}, which is kept") for s in copies[1:]]
    return out


def _progress_iter(results, total: int, enabled: bool):
    if not enabled:
        yield from results
        return
    from tqdm import tqdm

    yield from tqdm(results, total=total, unit=" img", desc="checking images", leave=False, mininterval=0.5)


# --- splitting ----------------------------------------------------------------------------
def _rank(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def split_dataset(samples: list[Sample], seed: int = 1337, fractions=(0.8, 0.1, 0.1)) -> dict[str, list[Sample]]:
    """Grouped, stratified and deterministic: no group in two splits; each label (and within
    it each source) is dealt out in `fractions`; the result depends on the seed and the
    samples, never on their order.

    Groups are ranked per label by (source, hash(seed, group)) and dealt one by one to the
    split that is furthest behind its share (relative to it), so every source gets its share
    too, and a label with three groups or more puts one in each split."""
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    groups: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        groups[s.group].append(s)
    strata: dict[int, list[tuple[str, str, str]]] = defaultdict(list)
    for g, members in groups.items():
        # A mixed group (a real video and the fakes made from it) goes with its majority label.
        label = max((n, lbl) for lbl, n in Counter(s.label for s in members).items())[1]
        sources = Counter(s.source for s in members)
        source = min(src for src, n in sources.items() if n == max(sources.values()))
        strata[label].append((source, _rank(seed, g), g))

    out: dict[str, list[Sample]] = {name: [] for name in SPLIT_NAMES}
    for label in sorted(strata):
        counts = [0, 0, 0]
        seen = 0
        for _, _, g in sorted(strata[label]):
            seen += len(groups[g])

            def behind(i):  # how far split i is behind its share, relative to that share
                target = fractions[i] * seen
                return (target - counts[i]) / target if target > 0 else float("-inf")

            # Ties go to the smaller split, so that even a few groups give val and test one each.
            best = max(range(3), key=lambda i: (behind(i), -fractions[i], -i))
            counts[best] += len(groups[g])
            out[SPLIT_NAMES[best]] += groups[g]
    for name in out:
        out[name].sort(key=lambda s: s.path)
    return out


def check_leave_out(samples: list[Sample], source: str, where="the data") -> None:
    """Refuse `--leave-out SOURCE` for a source that is not in `samples`, or that is the only one."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for s in samples:
        counts[s.source][s.label] += 1
    listing = ", ".join(f"{name} ({c[0]} real, {c[1]} fake)" for name, c in sorted(counts.items()))
    if source not in counts:
        raise DatasetError(f"--leave-out {source}: no such source in {where}; its sources are: {listing}")
    if len(counts) == 1:
        raise DatasetError(f"--leave-out {source}: {source} is the only source in {where}, so nothing would be left "
                           "to train on; leave-one-source-out needs two sources or more")


def leave_out(samples: list[Sample], source: str) -> tuple[list[Sample], list[Sample], list[Sample]]:
    """(kept, left out, dropped): the samples of `source` are left out of training, validation
    and test. No group spans the left-out set and the rest, so a sample of another source that
    shares a group with a left-out one is dropped (used nowhere)."""
    out_groups = {s.group for s in samples if s.source == source}
    left = [s for s in samples if s.source == source]
    dropped = [s for s in samples if s.source != source and s.group in out_groups]
    kept = [s for s in samples if s.group not in out_groups]
    return kept, left, dropped


def save_split(run_dir, dataset_root, seed: int, splits: dict[str, list[Sample]], left_out: list[Sample] | None = None,
               left_out_source: str | None = None) -> Path:
    """RUN_DIR/split.json: the seed, the data folder, each split's paths (relative to the
    data folder where they lie below it) and each path's label, source and group. A run
    trained with --leave-out SOURCE also records that source ("left_out_source") and its
    images ("left_out"): in no split, kept for `unmask evaluate RUN --split left-out`."""
    root = _absolute(dataset_root)

    def rel(p: str) -> str:
        try:
            return str(Path(p).relative_to(root))
        except ValueError:
            return p  # video face crops live in the cache

    left_out = list(left_out or [])
    doc = {
        "seed": seed,
        "data": recorded(root),
        "splits": {name: [rel(s.path) for s in splits[name]] for name in splits},
        "samples": {rel(s.path): [s.label, s.source, s.group] for s in [*(x for v in splits.values() for x in v), *left_out]},
    }
    if left_out_source is not None:
        doc["left_out_source"] = left_out_source
        doc["left_out"] = [rel(s.path) for s in sorted(left_out, key=lambda s: s.path)]
    path = Path(run_dir) / SPLIT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1))
    return path


def _read_split_file(run_dir, data_root):
    """(path of split.json, its document, the data folder, labels per recorded path)."""
    path = Path(run_dir) / SPLIT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: this run folder has no recorded split "
                                "(evaluate a whole folder with --data instead)")
    doc = json.loads(path.read_text())
    root = _absolute(data_root) if data_root else from_record(doc["data"])
    meta = doc.get("samples")
    if meta is None:
        ds = load_dataset(root, validate=False, progress=False)
        meta = {}
        for s in ds.samples:
            key = str(Path(s.path).relative_to(root)) if Path(s.path).is_relative_to(root) else s.path
            meta[key] = [s.label, s.source, s.group]
    return path, doc, root, meta


def _samples_of(paths: list[str], root: Path, meta: dict, missing: list) -> list[Sample]:
    out = []
    for p in paths:
        full = Path(p) if Path(p).is_absolute() else root / p
        if p not in meta:
            missing.append(p)
            continue
        label, source, group = meta[p]
        out.append(Sample(str(full), int(label), source, group))
    return out


def load_split(run_dir, data_root=None) -> dict[str, list[Sample]]:
    """The splits a run was trained with. `data_root` replaces the recorded data folder
    (the data moved). Labels come from split.json, or from re-reading the data folder."""
    path, doc, root, meta = _read_split_file(run_dir, data_root)
    missing: list[str] = []
    out = {name: _samples_of(paths, root, meta, missing) for name, paths in doc["splits"].items()}
    if missing:
        raise DatasetError(f"{len(missing)} file(s) of {path} have no label in {root} (first: {missing[0]}); "
                           "pass the data folder the run was trained on")
    if not any((root / p).exists() or Path(p).exists() for paths in doc["splits"].values() for p in paths[:1]):
        raise DatasetError(f"the files of {path} are not in {root}; pass --data with the folder the run was trained on")
    return out


def load_left_out(run_dir, data_root=None) -> tuple[str | None, list[Sample]]:
    """(the source a run was trained without, its images), or (None, []) for a run trained
    on every source. `data_root` as for load_split."""
    path, doc, root, meta = _read_split_file(run_dir, data_root)
    if doc.get("left_out_source") is None:
        return None, []
    missing: list[str] = []
    samples = _samples_of(doc.get("left_out", []), root, meta, missing)
    if missing:
        raise DatasetError(f"{len(missing)} left-out file(s) of {path} have no label in {root} (first: {missing[0]}); "
                           "pass the data folder the run was trained on")
    if samples and not any(Path(s.path).exists() for s in samples[:3]):
        raise DatasetError(f"the left-out files of {path} are not in {root}; pass --data with the folder the run was "
                           "trained on")
    return doc["left_out_source"], samples


def subsample(samples: list[Sample], n: int, seed: int = 1337) -> list[Sample]:
    """About `n` samples, taken as whole groups in a seeded order (so groups stay whole and
    the labels and sources keep roughly their shares). For quick runs (--limit)."""
    if n <= 0 or n >= len(samples):
        return list(samples)
    groups: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        groups[s.group].append(s)
    out: list[Sample] = []
    for g in sorted(groups, key=lambda g: _rank(seed + 1, g)):
        if len(out) >= n:
            break
        out += groups[g]
    return sorted(out, key=lambda s: s.path)
