"""Users' reports that a verdict was wrong ("it is real" / "it is fake"), and writing them out
(`unmask feedback export`: training/commands/feedback.py).

The server keeps reports (POST /api/v1/feedback) in one SQLite file that every gunicorn
worker shares: `UNMASK_FEEDBACK_URI`, `sqlite:///PATH` or a plain path (default
`sqlite:///feedback.sqlite3`, in the server's working directory); `off` keeps none. A report
holds the SHA-256 of the picture's bytes, and the picture itself only when the user chose to
send it. Never the client's address.
"""
from __future__ import annotations

import base64
import binascii
import csv
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

SAYS = ("real", "fake")
MAX_NOTE = 2000  # characters
MAX_URL = 2048
SOURCE = "user-reports"  # the source name reports take in a data folder
FIELDS = ("id", "received", "sha256", "says", "note", "verdict", "p_fake", "model", "image_url", "page_url", "picture_type")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_VERDICTS = ("fake", "real", "uncertain", "no_face")


class FeedbackError(ValueError):
    """A report that cannot be accepted: `code` and a message saying what to send instead."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class Report:
    sha256: str
    says: str
    note: str = ""
    verdict: str = ""
    p_fake: float | None = None
    model: str = ""
    image_url: str = ""
    page_url: str = ""
    picture: bytes | None = None
    picture_type: str = ""


def parse_report(body, max_picture_bytes: int) -> Report:
    """A report from the JSON body of POST /feedback, or a FeedbackError naming the field."""
    from server.uploads import IMAGE_KINDS, sniff

    if not isinstance(body, dict):
        raise FeedbackError("bad_report", "send a JSON object: {\"sha256\": ..., \"says\": \"real\" or \"fake\", ...}")
    unknown = set(body) - {"sha256", "says", "note", "verdict", "p_fake", "model", "image_url", "page_url", "picture"}
    if unknown:
        raise FeedbackError("bad_report", f"unknown field(s) {', '.join(sorted(map(str, unknown)))}; see /api/v1/openapi.json")
    sha = body.get("sha256")
    if not isinstance(sha, str) or not _SHA256.match(sha):
        raise FeedbackError("bad_report", "sha256 must be the SHA-256 of the picture's bytes, 64 lower-case hex digits")
    says = body.get("says")
    if says not in SAYS:
        raise FeedbackError("bad_report", "says must be \"real\" or \"fake\": what the picture really is")
    text = {}
    for name, limit in (("note", MAX_NOTE), ("model", 200), ("image_url", MAX_URL), ("page_url", MAX_URL)):
        value = body.get(name, "")
        if value is None:
            value = ""
        if not isinstance(value, str) or len(value) > limit:
            raise FeedbackError("bad_report", f"{name} must be text of at most {limit} characters")
        text[name] = value
    verdict = body.get("verdict") or ""
    if verdict and verdict not in _VERDICTS:
        raise FeedbackError("bad_report", f"verdict must be one of {', '.join(_VERDICTS)}")
    p_fake = body.get("p_fake")
    if p_fake is not None and (isinstance(p_fake, bool) or not isinstance(p_fake, (int, float)) or not 0 <= p_fake <= 1):
        raise FeedbackError("bad_report", "p_fake must be a number from 0 to 1, or left out")
    picture, kind = None, ""
    if body.get("picture") is not None:
        encoded = body["picture"]
        if not isinstance(encoded, str):
            raise FeedbackError("bad_report", "picture must be the picture's bytes in base64")
        if len(encoded) > (max_picture_bytes + 2) // 3 * 4 + 4:
            raise FeedbackError("too_large", f"the picture is over {max_picture_bytes / 2**20:.0f} MB; send the report without it")
        try:
            picture = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise FeedbackError("bad_report", "picture is not valid base64") from None
        kind = sniff(picture) or ""
        if kind not in IMAGE_KINDS:
            raise FeedbackError("unsupported_type", "picture must be a JPEG, PNG, WebP, GIF or BMP file")
        import hashlib

        if hashlib.sha256(picture).hexdigest() != sha:
            raise FeedbackError("hash_mismatch", "the picture's SHA-256 is not the sha256 sent: send the picture that was checked")
    return Report(sha, says, verdict=verdict, p_fake=None if p_fake is None else float(p_fake), picture=picture,
                  picture_type=kind, **text)


def sqlite_path(uri: str) -> Path | None:
    """The SQLite file a feedback_uri names (None for `off`), or a ValueError saying how to write it."""
    uri = (uri or "").strip()
    if uri.lower() in ("off", "none", "0"):
        return None
    if "://" not in uri:
        return Path(uri).expanduser()
    scheme, _, rest = uri.partition("://")
    if scheme != "sqlite" or not rest.startswith("/") or rest == "/":
        raise ValueError(f"feedback_uri {uri!r}: write it as sqlite:///relative/path.sqlite3, "
                         "sqlite:////absolute/path.sqlite3, a plain file path, or off")
    return Path(rest[1:]).expanduser()


class FeedbackStore:
    """Reports in one SQLite file, safe to share between gunicorn's worker processes."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("""CREATE TABLE IF NOT EXISTS reports (
                id INTEGER PRIMARY KEY, received REAL NOT NULL, sha256 TEXT NOT NULL, says TEXT NOT NULL,
                note TEXT, verdict TEXT, p_fake REAL, model TEXT, image_url TEXT, page_url TEXT,
                picture BLOB, picture_type TEXT)""")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10)

    def add(self, r: Report) -> int:
        with self._connect() as db:
            cur = db.execute(
                "INSERT INTO reports (received, sha256, says, note, verdict, p_fake, model, image_url, page_url, picture, picture_type)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (time.time(), r.sha256, r.says, r.note, r.verdict, r.p_fake, r.model, r.image_url, r.page_url, r.picture, r.picture_type))
            return int(cur.lastrowid)

    def rows(self, with_pictures: bool = False):
        """Every report, oldest first, as dicts (with `picture` bytes when asked)."""
        columns = ", ".join(FIELDS) + (", picture" if with_pictures else ", picture IS NOT NULL")
        with self._connect() as db:
            for row in db.execute(f"SELECT {columns} FROM reports ORDER BY id"):
                d = dict(zip(FIELDS, row[:len(FIELDS)]))
                if with_pictures:
                    d["picture"] = row[-1]
                d["has_picture"] = row[-1] is not None and row[-1] != 0
                yield d


class Feedback:
    """The server's store, opened on first use (an app built only to list routes writes no file)."""

    def __init__(self, uri: str):
        self.path = sqlite_path(uri)
        self._store = None

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def store(self) -> FeedbackStore:
        if self._store is None:
            self._store = FeedbackStore(self.path)
        return self._store


# --- writing reports out ------------------------------------------------------------------
EXTENSION = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "gif": ".gif", "bmp": ".bmp"}
MANIFEST_COLUMNS = ("path", "label", "source", "group", "note", "url", "page_url", "verdict", "sha256")


def write_folder(rows, out: Path) -> dict:
    """The faces-v1 layout: real/ and fake/ pictures named by their SHA-256, and manifest.csv
    (source user-reports, one group per picture). Reports sent without their picture are
    listed in without_picture.csv: a data folder cannot use them, nothing is dropped silently."""
    out.mkdir(parents=True, exist_ok=True)
    written, without = [], []
    for r in rows:
        if not r.get("picture"):
            without.append(r)
            continue
        rel = f"{r['says']}/{r['sha256']}{EXTENSION.get(r['picture_type'], '.bin')}"
        (out / r["says"]).mkdir(exist_ok=True)
        (out / rel).write_bytes(r["picture"])
        written.append({"path": rel, "label": r["says"], "source": SOURCE, "group": r["sha256"], "note": r["note"] or "",
                        "url": r["image_url"] or "", "page_url": r["page_url"] or "", "verdict": r["verdict"] or "", "sha256": r["sha256"]})
    _write_csv(out / "manifest.csv", MANIFEST_COLUMNS, _one_per_picture(written))
    if without:
        _write_csv(out / "without_picture.csv", FIELDS, without)
    return {"pictures": len(_one_per_picture(written)), "reports": len(written) + len(without), "without_picture": len(without)}


def _one_per_picture(rows: list[dict]) -> list[dict]:
    """A picture reported twice is one sample, labelled by its latest report."""
    latest = {}
    for r in rows:
        latest[r["sha256"]] = r
    return list(latest.values())


def _write_csv(path, columns, rows) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        _csv_rows(f, columns, rows)


def _csv_rows(f, columns, rows) -> None:
    w = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})


