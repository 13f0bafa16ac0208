"""Server settings, read from the environment in one place.

Every setting is an `UNMASK_*` variable; `create_app(config)` takes a dict that overrides
them (tests use that). server/README.md lists them all.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from dataclasses import dataclass, field, fields

MB = 1024 * 1024


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def _int(name: str, default: int) -> int:
    raw = _env(name)
    if not raw:
        return default
    try:
        return int(float(raw))
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None


def _float(name: str, default: float) -> float:
    raw = _env(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None


def _bool(name: str, default: bool) -> bool:
    raw = _env(name).lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={raw!r}: use on or off")


def _list(name: str) -> list[str]:
    return [s.strip() for s in _env(name).split(",") if s.strip()]


def parse_rate(text: str) -> tuple[int, float]:
    """"60/minute" -> (60, 60.0). Empty or "0" means no limit: (0, 0)."""
    text = text.strip().lower()
    if not text or text in ("0", "off", "none"):
        return 0, 0.0
    periods = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600, "d": 86400, "day": 86400}
    count, _, period = text.partition("/")
    try:
        n = int(count)
        seconds = periods[period or "minute"]
    except (ValueError, KeyError):
        raise ValueError(f"rate limit {text!r}: write it as COUNT/second, COUNT/minute, COUNT/hour or COUNT/day") from None
    if n < 0:
        raise ValueError(f"rate limit {text!r} is negative")
    return n, float(seconds)


@dataclass
class Config:
    # The model: a bundled name (found under UNMASK_MODELS_DIR) or a run folder.
    model: str = "ensemble"
    # Size limits of one upload, in bytes.
    max_image_bytes: int = 20 * MB
    max_video_bytes: int = 200 * MB
    # Images with more pixels are refused before they are decoded (decompression bombs).
    max_pixels: int = 50_000_000
    # Frames sampled from a video.
    video_frames: int = 16
    # An API key clients send in the X-API-Key header; empty: no key needed.
    api_key: str = ""
    # Requests per client: "60/minute"; empty: no limit.
    rate_limit: str = ""
    # Where the rate-limit counts and the result cache live: memory:// (each worker alone)
    # or redis://HOST:PORT/DB (shared by every worker of every server using it).
    storage_uri: str = "memory://"
    # Redis connect and read timeout, seconds: past it, the worker falls back to its memory.
    storage_timeout_s: float = 0.25
    # Results remembered by the upload's SHA-256: how long (0: no cache), and how many per worker.
    cache_ttl_s: int = 86400
    cache_entries: int = 1024
    # Trust X-Forwarded-For from one proxy in front (to tell clients apart).
    trust_proxy: bool = False
    # Origins whose requests are taken and answered with CORS, besides the server's own:
    # by default our own extension (its ID comes from extension/manifest.json's key), so the
    # second opinion of `make run` works; UNMASK_CORS_ORIGINS replaces it (empty: none).
    cors_origins: list[str] = field(default_factory=list)
    # Keep accepted uploads here (named by their SHA-256); empty: never stored.
    upload_dir: str = ""
    # Where users' reports (POST /feedback) are kept: sqlite:///PATH or a path; "off": nowhere.
    feedback_uri: str = "sqlite:///feedback.sqlite3"
    # Temporary files (videos being read) go here and are always removed.
    tmp_dir: str = field(default_factory=tempfile.gettempdir)
    # The dynamic micro-batcher.
    batching: bool = True
    batch_max: int = 16
    batch_wait_ms: float = 10.0

    @classmethod
    def from_env(cls) -> "Config":
        return cls(
            model=_env("UNMASK_MODEL", "ensemble"),
            max_image_bytes=_int("UNMASK_MAX_IMAGE_BYTES", 20 * MB),
            max_video_bytes=_int("UNMASK_MAX_VIDEO_BYTES", 200 * MB),
            max_pixels=_int("UNMASK_MAX_PIXELS", 50_000_000),
            video_frames=_int("UNMASK_VIDEO_FRAMES", 16),
            api_key=_env("UNMASK_API_KEY"),
            rate_limit=_env("UNMASK_RATE_LIMIT"),
            storage_uri=_env("UNMASK_STORAGE_URI") or "memory://",
            storage_timeout_s=_float("UNMASK_STORAGE_TIMEOUT_S", 0.25),
            cache_ttl_s=_int("UNMASK_CACHE_TTL_S", 86400),
            cache_entries=_int("UNMASK_CACHE_ENTRIES", 1024),
            trust_proxy=_bool("UNMASK_TRUST_PROXY", False),
            cors_origins=(_list("UNMASK_CORS_ORIGINS") if "UNMASK_CORS_ORIGINS" in os.environ
                          else own_extension_origins()),
            upload_dir=_env("UNMASK_UPLOAD_DIR"),
            feedback_uri=_env("UNMASK_FEEDBACK_URI") or "sqlite:///feedback.sqlite3",
            tmp_dir=_env("UNMASK_TMP_DIR") or tempfile.gettempdir(),
            batching=_bool("UNMASK_BATCHING", True),
            batch_max=_int("UNMASK_BATCH_MAX", 16),
            batch_wait_ms=_float("UNMASK_BATCH_WAIT_MS", 10.0),
        )

    def updated(self, overrides: dict | None) -> "Config":
        if not overrides:
            return self
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise ValueError(f"unknown server setting(s): {', '.join(sorted(unknown))}")
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(overrides)
        return Config(**values)

    def validate(self) -> "Config":
        parse_rate(self.rate_limit)
        from models.provenance import ANCHORS_ENV, trust_anchors

        trust_anchors(os.environ.get(ANCHORS_ENV) or None)  # more C2PA trust anchors: readable, or say so now
        from server.feedback import sqlite_path

        sqlite_path(self.feedback_uri)
        for name in ("max_image_bytes", "max_video_bytes", "max_pixels", "video_frames", "batch_max"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)}")
        if self.batch_wait_ms < 0:
            raise ValueError("batch_wait_ms must not be negative")
        if self.storage_uri.split("://", 1)[0] not in ("memory", "redis", "rediss") or "://" not in self.storage_uri:
            raise ValueError(f"storage {self.storage_uri!r}: use memory:// or redis://HOST:PORT[/DB]")
        if not 0 < self.storage_timeout_s <= 10:
            raise ValueError(f"storage_timeout_s must be above 0 and at most 10 seconds, not {self.storage_timeout_s}")
        for name in ("cache_ttl_s", "cache_entries"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, not {getattr(self, name)}")
        return self


def gunicorn_settings() -> dict:
    """gunicorn's settings from the environment (server/gunicorn_conf.py reads these)."""
    bind = _env("UNMASK_BIND", "127.0.0.1:8000")
    parse_bind(bind)
    settings = {
        "bind": bind,
        "workers": _int("UNMASK_WORKERS", 1),
        "threads": _int("UNMASK_THREADS", 4),
        "timeout": _int("UNMASK_TIMEOUT", 120),
        "graceful_timeout": _int("UNMASK_GRACEFUL_TIMEOUT", 30),
        "keepalive": _int("UNMASK_KEEPALIVE", 5),
        # Each request must arrive within read_timeout s, plus 1 s per read_min_rate bytes
        # received (server/worker.py): slow clients cannot hold the request threads.
        "read_timeout": _float("UNMASK_READ_TIMEOUT", 20.0),
        "read_min_rate": _int("UNMASK_READ_MIN_RATE", 64 * 1024),
        "loglevel": _env("UNMASK_LOG_LEVEL", "info"),
        "accesslog": _env("UNMASK_ACCESS_LOG") or None,
    }
    for name in ("workers", "threads", "timeout"):
        if settings[name] < 1:
            raise ValueError(f"UNMASK_{name.upper()} must be at least 1, not {settings[name]}")
    if settings["read_timeout"] <= 0:
        raise ValueError(f"UNMASK_READ_TIMEOUT must be positive, not {settings['read_timeout']}")
    if settings["read_min_rate"] < 0:
        raise ValueError(f"UNMASK_READ_MIN_RATE must not be negative, not {settings['read_min_rate']}")
    return settings


def parse_bind(bind: str) -> tuple[str, int]:
    """"HOST:PORT" -> (host, port), or a ValueError that shows the right form."""
    host, sep, port = bind.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bind address {bind!r} is not HOST:PORT (for example 127.0.0.1:8000)")
    return host, int(port)


MANIFEST = Path(__file__).resolve().parents[1] / "extension" / "manifest.json"


def own_extension_origins(manifest: Path = MANIFEST) -> list[str]:
    """chrome-extension://ID of the extension built from this checkout, as Chrome derives the ID
    of an unpacked extension from its manifest's key (extension/build.mjs prints the same):
    the first 32 hex digits of SHA-256 of the key, each written as a letter a-p. Empty when
    the manifest or its key is absent (a server installed without the extension's source)."""
    import base64
    import hashlib
    import json

    try:
        key = json.loads(manifest.read_text())["key"]
        digest = hashlib.sha256(base64.b64decode(key)).hexdigest()[:32]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return ["chrome-extension://" + "".join(chr(ord("a") + int(h, 16)) for h in digest)]
