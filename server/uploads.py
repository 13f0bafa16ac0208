"""Uploaded files: what they really are, where their bytes live, and that nothing is kept.

- `sniff` decides a file's type from its first bytes, never from its name.
- `read_upload` takes the file from a multipart `file` field or the raw body, and refuses a
  file whose declared type (Content-Type or file name) disagrees with its content.
- `temp_file` holds a video on disk while it is read and always removes it; files left by a
  killed worker are swept up by `sweep_orphans`.
- `store` keeps an upload only where the configuration names a folder.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from models.preprocessing import ACCEPTED, looks_like_text

IMAGE_KINDS = {"jpeg", "png", "webp", "gif", "bmp"}
VIDEO_KINDS = {"mp4", "mov", "webm"}
LABELS = {"jpeg": "JPEG", "png": "PNG", "webp": "WebP", "gif": "GIF", "bmp": "BMP", "mp4": "MP4", "mov": "MOV", "webm": "WebM"}
MIME = {
    "jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif", "bmp": "image/bmp",
    "mp4": "video/mp4", "mov": "video/quicktime", "webm": "video/webm",
}
EXTENSION = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "gif": ".gif", "bmp": ".bmp", "mp4": ".mp4", "mov": ".mov", "webm": ".webm"}

# What a client may call each kind. MP4 and MOV share one container family, so either
# name is accepted for either (phones label MOV files video/mp4 and back).
_DECLARED = {
    "image/jpeg": {"jpeg"}, "image/jpg": {"jpeg"}, "image/pjpeg": {"jpeg"}, "image/png": {"png"},
    "image/webp": {"webp"}, "image/gif": {"gif"}, "image/bmp": {"bmp"}, "image/x-ms-bmp": {"bmp"},
    "video/mp4": {"mp4", "mov"}, "video/quicktime": {"mov", "mp4"}, "video/webm": {"webm"},
}
_BY_SUFFIX = {
    ".jpg": {"jpeg"}, ".jpeg": {"jpeg"}, ".jpe": {"jpeg"}, ".jfif": {"jpeg"}, ".png": {"png"}, ".webp": {"webp"},
    ".gif": {"gif"}, ".bmp": {"bmp"}, ".dib": {"bmp"}, ".mp4": {"mp4", "mov"}, ".m4v": {"mp4", "mov"},
    ".mov": {"mov", "mp4"}, ".webm": {"webm"},
}
# Declared types that say nothing about the content.
_GENERIC = {"", "application/octet-stream", "binary/octet-stream", "application/x-www-form-urlencoded"}

TEMP_PREFIX = "unmask-"


class UploadError(Exception):
    """A request whose file cannot be used. Becomes a JSON error with this status."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def sniff(data: bytes) -> str | None:
    """The kind of file these bytes start, or None."""
    head = data[:64]
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:2] == b"BM" and len(head) >= 26:
        return "bmp"
    if head[4:8] == b"ftyp":
        return "mov" if head[8:12] == b"qt  " else "mp4"
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"):
        return "mov"  # QuickTime files written without an ftyp box
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm" if b"webm" in data[:4096] else "matroska"
    return None


def _looks_like_url(data: bytes) -> bool:
    text = data[:4096].lstrip().lower()
    return text.startswith((b"http://", b"https://", b"ftp://", b"file:")) or (
        text.startswith(b"{") and re.search(rb'"(url|uri|href|src)"\s*:', text) is not None
    )


@dataclass
class Upload:
    data: bytes
    kind: str  # one of IMAGE_KINDS | VIDEO_KINDS

    @property
    def label(self) -> str:
        return LABELS[self.kind]

    @property
    def mime(self) -> str:
        return MIME[self.kind]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def read_upload(request, accept: set[str], max_bytes: int) -> Upload:
    """The file in a Flask request, checked: present, within `max_bytes`, of a kind in
    `accept`, and not lying about its type."""
    declared_type, filename = "", ""
    content_type = (request.mimetype or "").lower()
    if content_type == "application/x-www-form-urlencoded" and request.content_length:
        raise UploadError(400, "no_file", "a form without a file: send the file in a multipart field named 'file', or as the raw body")
    if content_type.startswith("multipart/"):
        part = request.files.get("file")
        if part is None:
            raise UploadError(400, "no_file", "no file in the form: send the file in a multipart field named 'file'")
        data = part.read(max_bytes + 1)
        declared_type, filename = (part.mimetype or "").lower(), part.filename or ""
    else:
        data = request.get_data(cache=False)
        declared_type = content_type
    if len(data) > max_bytes:
        raise UploadError(413, "too_large", f"the file is larger than the limit of {_size(max_bytes)}")
    if not data:
        raise UploadError(400, "empty", "the file is empty: send the image or video itself")
    kind = sniff(data)
    names = [LABELS[k] for k in sorted(accept, key=list(LABELS).index)]
    wanted = ", ".join(names[:-1]) + " or " + names[-1]
    if kind is None:
        if _looks_like_url(data):
            raise UploadError(415, "url_not_fetched", "the server never fetches URLs: download the file and upload it itself")
        what = "a text file, not a picture or a video" if looks_like_text(data) else "not a file type Unmask reads"
        raise UploadError(415, "unsupported_type", f"This is {what}. Send {ACCEPTED}.")
    if kind == "matroska":
        raise UploadError(415, "unsupported_type", f"Matroska (MKV) videos are not read: send {wanted}")
    _check_declared(kind, declared_type, filename)
    if kind not in accept:
        other = "image" if kind in IMAGE_KINDS else "video"
        hint = {"image": " to /api/v1/check", "video": " to /api/v1/check/video"}[other]
        raise UploadError(415, "wrong_endpoint", f"this is a {LABELS[kind]} {other}: send it{hint}; this endpoint takes {wanted}")
    return Upload(data, kind)


FRAME_KINDS = {"jpeg", "png"}


def read_frames(request, max_frames: int, max_bytes: int) -> tuple[list[Upload], list[float | None]]:
    """The frames of one video a client took itself (POST /api/v1/check/frames): multipart
    fields named `frame`, JPEG or PNG, in time order, each checked like an upload, at most
    `max_frames` of them; and `times`, a JSON list of their times in seconds (optional)."""
    import json

    if not (request.mimetype or "").lower().startswith("multipart/"):
        raise UploadError(400, "no_file", "send the frames as multipart fields named 'frame' (JPEG or PNG), in time order")
    parts = request.files.getlist("frame")
    if not parts:
        raise UploadError(400, "no_file", "no frame in the form: send each frame in a multipart field named 'frame'")
    if len(parts) > max_frames:
        raise UploadError(413, "too_many_frames", f"{len(parts)} frames: send at most {max_frames}")
    frames = []
    for n, part in enumerate(parts, start=1):
        data = part.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise UploadError(413, "too_large", f"frame {n} is larger than the limit of {_size(max_bytes)}")
        if not data:
            raise UploadError(400, "empty", f"frame {n} is empty")
        kind = sniff(data)
        if kind not in FRAME_KINDS:
            raise UploadError(415, "unsupported_type", f"frame {n} is not a JPEG or PNG image: send frames, not the video")
        _check_declared(kind, (part.mimetype or "").lower(), part.filename or "")
        frames.append(Upload(data, kind))
    times: list[float | None] = [None] * len(frames)
    raw = request.form.get("times")
    if raw:
        try:
            times = [float(t) for t in json.loads(raw)]
        except (ValueError, TypeError):
            raise UploadError(400, "bad_times", "times must be a JSON list of numbers, one per frame, in seconds") from None
        if len(times) != len(frames) or any(t != t or t < 0 for t in times):
            raise UploadError(400, "bad_times", f"times must give one time in seconds (0 or more) for each of the {len(frames)} frames")
    return frames, times


def _check_declared(kind: str, declared_type: str, filename: str) -> None:
    """A file whose Content-Type or name names another type lies about what it is."""
    claims = []
    if declared_type not in _GENERIC and not declared_type.startswith("multipart/"):
        claims.append((declared_type, _DECLARED.get(declared_type)))
    suffix = Path(filename).suffix.lower()
    if suffix:
        claims.append((f"the name *{suffix}", _BY_SUFFIX.get(suffix)))
    for claim, kinds in claims:
        if kinds is not None and kind not in kinds:
            raise UploadError(
                415, "type_mismatch",
                f"the file claims to be {claim} but its content is {LABELS.get(kind, kind)}: "
                "send it with its real type or name",
            )


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.0f} MB" if n >= 1024 * 1024 else f"{n / 1024:.0f} KB"


@contextlib.contextmanager
def temp_file(folder: str, data: bytes, suffix: str):
    """A file holding `data` for the duration of the block, removed whatever happens.
    The name carries our pid, so that files of a killed worker can be found."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    path = Path(folder) / f"{TEMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex}{suffix}"
    try:
        with open(path, "xb") as f:
            f.write(data)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def sweep_orphans(folder: str, pid: int | None = None) -> int:
    """Remove our temporary files left by dead processes (or by `pid`); returns how many."""
    removed = 0
    pattern = re.compile(rf"^{re.escape(TEMP_PREFIX)}(\d+)-[0-9a-f]{{32}}\.\w+$")
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return 0
    for p in entries:
        m = pattern.match(p.name)
        if not m:
            continue
        owner = int(m.group(1))
        if (pid is not None and owner == pid) or (pid is None and not _alive(owner)):
            with contextlib.suppress(OSError):
                p.unlink()
                removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def store(upload: Upload, folder: str) -> Path | None:
    """Keep the upload in `folder` (only where configured), named by its content hash."""
    if not folder:
        return None
    Path(folder).mkdir(parents=True, exist_ok=True)
    path = Path(folder) / f"{upload.sha256}{EXTENSION[upload.kind]}"
    if not os.path.lexists(path):
        write_new(path, upload.data)
    return path


def write_new(path: Path, data: bytes) -> None:
    """Put `data` at `path` whole or not at all: written to a temporary name of its own
    (created exclusively, so it never follows a link planted in a shared folder, and two
    requests storing the same file at once never share it), then renamed over `path` (which
    replaces a link there rather than writing through it)."""
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
