"""Results of the model on an upload, remembered by the upload's SHA-256.

The page's /check then /explain, and a feed that shows the same picture again, send the same
bytes: a hit gives the faces and verdicts without a model call. The key is the SHA-256 of
the bytes with the model's name, version and calibration and the face contract's version, so
a new model, calibration or contract never serves an old answer. Entries are JSON (boxes, scores,
verdicts; never the picture) and expire after `UNMASK_CACHE_TTL_S`.

Each worker keeps the latest entries in its memory; with a `redis://` storage they are also
written to Redis, which every worker of every server sharing it reads first. Redis gets short
timeouts. While it does not answer, the worker carries on with its memory alone (logged) and
a background thread asks Redis again every second; once it answers, the results this worker
holds are written there where Redis lacks them (made meanwhile, or lost by a restarted Redis),
so that no other worker scores them again.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict

log = logging.getLogger("unmask.server")
RETRY_REDIS_S = 1.0  # while Redis does not answer, a background thread asks again this often


def result_key(digest: str, *parts) -> str:
    return "unmask-result:" + ":".join(str(p) for p in parts) + ":" + digest


class ResultCache:
    def __init__(self, uri: str = "memory://", timeout_s: float = 0.25, ttl_s: int = 86400, entries: int = 1024):
        self.ttl_s, self.entries = ttl_s, entries
        self._memory: OrderedDict[str, tuple[float, str]] = OrderedDict()  # key -> (expires, JSON)
        self._made_while_down = 0  # results put while Redis did not answer (the retry writes them all)
        self._lock = threading.Lock()
        self._redis = None
        self._redis_down = False  # requests leave Redis alone while set; the retry thread clears it
        if uri.startswith(("redis://", "rediss://")):
            import redis

            self._redis = redis.Redis.from_url(uri, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self.stats = {"hits": 0, "misses": 0, "redis_errors": 0, "shared_after_outage": 0}

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0 and self.entries > 0

    def get(self, key: str) -> dict | None:
        """Redis first when it is up (the one answer every worker shares); this worker's memory
        when Redis is away, or lacks what the memory holds (a restarted Redis lost it: it is
        written back there, so the next worker finds it too)."""
        if not self.enabled:
            return None
        text = self._redis_call(lambda r: r.get(key))
        if text is not None:
            text = text.decode() if isinstance(text, bytes) else text
            self._remember(key, text)
            self.stats["hits"] += 1
            return json.loads(text)
        now = time.monotonic()
        with self._lock:
            held = self._memory.get(key)
            if held and held[0] > now:
                self._memory.move_to_end(key)
            else:
                held = None
        if held is None:
            self.stats["misses"] += 1
            return None
        self._redis_call(lambda r: r.set(key, held[1], ex=max(1, int(held[0] - now)), nx=True))
        self.stats["hits"] += 1
        return json.loads(held[1])

    def put(self, key: str, value: dict) -> None:
        if not self.enabled:
            return
        text = json.dumps(value)
        self._remember(key, text)
        if self._redis is not None and self._redis_call(lambda r: r.set(key, text, ex=self.ttl_s)) is None:
            with self._lock:  # shared once Redis answers again (_retry)
                self._made_while_down += 1

    def state(self) -> dict:
        kind = "redis" if self._redis is not None else "memory"
        shared = self._redis is not None and not self._redis_down
        return {"storage": kind, "shared": shared, "entries_here": len(self._memory),
                "waiting_for_redis": self._made_while_down, **self.stats}

    def _remember(self, key: str, text: str) -> None:
        with self._lock:
            self._memory[key] = (time.monotonic() + self.ttl_s, text)
            self._memory.move_to_end(key)
            while len(self._memory) > self.entries:
                self._memory.popitem(last=False)

    def _redis_call(self, fn):
        """fn(redis) or None: without Redis, while it is down, or when it fails now."""
        if self._redis is None or self._redis_down:
            return None
        import redis

        try:
            return fn(self._redis)
        except redis.RedisError as e:
            self.stats["redis_errors"] += 1
            self._went_down(e)
            return None

    def _went_down(self, error: Exception) -> None:
        with self._lock:
            if self._redis_down:
                return
            self._redis_down = True
            log.warning("result cache: Redis does not answer (%s); this worker uses its own memory until it does",
                        type(error).__name__)
            # A thread of its own, so that Redis comes back for this worker even while no request
            # comes (a gunicorn worker forks before any request, so the thread is the worker's).
            threading.Thread(target=self._retry, name="unmask-cache-redis-retry", daemon=True).start()

    def _retry(self) -> None:
        import redis

        while True:
            time.sleep(RETRY_REDIS_S)
            try:
                self._redis.ping()
            except redis.RedisError:
                self.stats["redis_errors"] += 1
                continue
            # Up again: requests write to Redis from now on, and this thread writes what this
            # worker holds, with what is left of its time, where Redis lacks it: what was made
            # meanwhile, and what a restarted Redis lost, before any request asks for it.
            now = time.monotonic()
            with self._lock:
                self._redis_down = False
                made, self._made_while_down = self._made_while_down, 0
                held = [(k, v) for k, v in self._memory.items() if v[0] > now]
            try:
                if held:
                    pipe = self._redis.pipeline(transaction=False)
                    for key, (expires, text) in held:
                        pipe.set(key, text, ex=max(1, int(expires - now)), nx=True)
                    written = sum(bool(r) for r in pipe.execute())
                else:
                    written = 0
            except redis.RedisError as e:
                self.stats["redis_errors"] += 1
                with self._lock:
                    self._made_while_down += made
                self._went_down(e)  # down again: a new thread takes over, and writes them all again
                return
            self.stats["shared_after_outage"] += written
            log.info("result cache: Redis answers again; results are shared (%d made meanwhile, %d written there)", made, written)
            return
