"""Results of the model on an upload, remembered by the upload's SHA-256.

The page's /check then /explain, and a feed that shows the same picture again, send the same
bytes: a hit gives the faces and verdicts without a model call. The key is the SHA-256 of
the bytes with the model's name, version and calibration and the face contract's version, so
a new model, calibration or contract never serves an old answer. Entries are JSON (boxes, scores,
verdicts; never the picture) and expire after `UNMASK_CACHE_TTL_S`.

Each worker keeps the latest entries in its memory; with a `redis://` storage they are also
written to Redis, which every worker of every server sharing it reads. Redis gets short
timeouts; while it does not answer, the worker carries on with its memory alone (logged) and
tries Redis again every few seconds.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict

log = logging.getLogger("unmask.server")
RETRY_REDIS_S = 5.0  # after a failure, Redis is left alone this long


def result_key(digest: str, *parts) -> str:
    return "unmask-result:" + ":".join(str(p) for p in parts) + ":" + digest


class ResultCache:
    def __init__(self, uri: str = "memory://", timeout_s: float = 0.25, ttl_s: int = 86400, entries: int = 1024):
        self.ttl_s, self.entries = ttl_s, entries
        self._memory: OrderedDict[str, tuple[float, str]] = OrderedDict()  # key -> (expires, JSON)
        self._lock = threading.Lock()
        self._redis = None
        self._redis_down_until = 0.0  # time.monotonic(); 0: Redis is believed up
        if uri.startswith(("redis://", "rediss://")):
            import redis

            self._redis = redis.Redis.from_url(uri, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self.stats = {"hits": 0, "misses": 0, "redis_errors": 0}

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0 and self.entries > 0

    def get(self, key: str) -> dict | None:
        if not self.enabled:
            return None
        now = time.monotonic()
        with self._lock:
            hit = self._memory.get(key)
            if hit and hit[0] > now:
                self._memory.move_to_end(key)
                self.stats["hits"] += 1
                return json.loads(hit[1])
        text = self._redis_call(lambda r: r.get(key))
        if text is not None:
            self._remember(key, text.decode() if isinstance(text, bytes) else text)
            self.stats["hits"] += 1
            return json.loads(text)
        self.stats["misses"] += 1
        return None

    def put(self, key: str, value: dict) -> None:
        if not self.enabled:
            return
        text = json.dumps(value)
        self._remember(key, text)
        self._redis_call(lambda r: r.set(key, text, ex=self.ttl_s))

    def state(self) -> dict:
        kind = "redis" if self._redis is not None else "memory"
        shared = self._redis is not None and not self._redis_down_until
        return {"storage": kind, "shared": shared, "entries_here": len(self._memory), **self.stats}

    def _remember(self, key: str, text: str) -> None:
        with self._lock:
            self._memory[key] = (time.monotonic() + self.ttl_s, text)
            self._memory.move_to_end(key)
            while len(self._memory) > self.entries:
                self._memory.popitem(last=False)

    def _redis_call(self, fn):
        """fn(redis) or None: without Redis, while it is left alone, or when it fails now."""
        if self._redis is None or time.monotonic() < self._redis_down_until:
            return None
        import redis

        try:
            out = fn(self._redis)
        except redis.RedisError as e:
            self.stats["redis_errors"] += 1
            if not self._redis_down_until:
                log.warning("result cache: Redis does not answer (%s); this worker uses its own memory until it does",
                            type(e).__name__)
            self._redis_down_until = time.monotonic() + RETRY_REDIS_S
            return None
        if self._redis_down_until:
            log.info("result cache: Redis answers again; results are shared")
            self._redis_down_until = 0.0
        return out
