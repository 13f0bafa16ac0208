"""A per-client token bucket: `limit` requests per `period`, refilled smoothly.

Under gunicorn every worker is its own process, so the buckets live in one SQLite file that
all workers share (gunicorn_conf.py creates it). Without a file they live in this process.
"""
from __future__ import annotations

import math
import sqlite3
import threading
import time


class RateLimiter:
    def __init__(self, limit: int, period_s: float, db_path: str = ""):
        self.limit = limit
        self.period_s = period_s
        self.rate = limit / period_s if period_s else 0.0  # tokens per second
        self.db_path = db_path
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}
        self._local = threading.local()
        if db_path:
            with self._connect() as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("CREATE TABLE IF NOT EXISTS buckets (client TEXT PRIMARY KEY, tokens REAL, updated REAL)")

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    def hit(self, client: str, now: float | None = None) -> float:
        """Take one token for `client`. Returns 0 when allowed, else the seconds to wait."""
        if not self.enabled:
            return 0.0
        now = time.time() if now is None else now
        if self.db_path:
            return self._hit_db(client, now)
        with self._lock:
            tokens, updated = self._buckets.get(client, (float(self.limit), now))
            tokens, wait = self._take(tokens, updated, now)
            self._buckets[client] = (tokens, now)
            if len(self._buckets) > 10_000:
                self._forget_full(now)
            return wait

    def _take(self, tokens: float, updated: float, now: float) -> tuple[float, float]:
        tokens = min(float(self.limit), tokens + max(0.0, now - updated) * self.rate)
        if tokens >= 1.0:
            return tokens - 1.0, 0.0
        return tokens, (1.0 - tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        full = [c for c, (t, u) in self._buckets.items() if t + (now - u) * self.rate >= self.limit]
        for c in full:
            del self._buckets[c]

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.db_path, timeout=10, isolation_level=None)

    def _hit_db(self, client: str, now: float) -> float:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._connect()
        db.execute("BEGIN IMMEDIATE")  # one writer at a time across workers
        try:
            row = db.execute("SELECT tokens, updated FROM buckets WHERE client = ?", (client,)).fetchone()
            tokens, updated = row if row else (float(self.limit), now)
            tokens, wait = self._take(tokens, updated, now)
            db.execute("INSERT OR REPLACE INTO buckets VALUES (?, ?, ?)", (client, tokens, now))
            # Buckets that have refilled carry no state: drop them now and then.
            if int(now) % 60 == 0:
                db.execute("DELETE FROM buckets WHERE tokens + (? - updated) * ? >= ?", (now, self.rate, self.limit))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return wait


def retry_after_header(wait_s: float) -> str:
    """Retry-After takes whole seconds; round up so that the retry succeeds."""
    return str(max(1, math.ceil(wait_s)))
