"""The per-client rate limit: Flask-Limiter (the `limits` package) on the configured storage.

`UNMASK_STORAGE_URI` picks where the counts live: `memory://` (the default: nothing to run,
counted by each worker process alone) or `redis://HOST:PORT[/DB]` (one count for every worker
of every server that names the same Redis). Every API endpoint but health and the OpenAPI
document shares one limit per client (`UNMASK_RATE_LIMIT`), a moving window; the client is
the peer address, or the X-Forwarded-For address where the server trusts one proxy
(ProxyFix in server/__init__.py). A client over the limit gets a JSON 429 with Retry-After.

While Redis does not answer (short timeouts: `UNMASK_STORAGE_TIMEOUT_S`), each worker counts
in its own memory and says so in the log; it tries Redis again now and then (after 1, 2, 4...
up to 32 s) and goes back to it, logging that too, once it answers.
"""
from __future__ import annotations

import logging
import math
import time

from flask import request

log = logging.getLogger("unmask.server")
SCOPE = "api"  # one count per client over all limited endpoints


def storage_options(uri: str, timeout_s: float) -> dict:
    """Connection settings for the storage: Redis gets short timeouts, so that a Redis that is
    down or slow costs a request at most `timeout_s` before the fallback takes over."""
    if uri.startswith(("redis://", "rediss://")):
        return {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s, "health_check_interval": 0}
    return {}


def client_key() -> str:
    return request.remote_addr or "unknown"


def install(app, blueprint, exempt: set, rate: str, uri: str, timeout_s: float):
    """A Limiter on `app` that limits every endpoint of `blueprint` except those in `exempt`
    (and CORS preflights) to `rate` per client, shared; no limit when `rate` is empty."""
    from flask_limiter import Limiter, RateLimitExceeded

    from server.responses import error_response
    from server.config import parse_rate

    # swallow_errors: the first request that meets a dead Redis switches the limiter to its memory;
    # one whose error comes while another thread already switched it would be raised (HTTP 500).
    # It is let through uncounted instead, and logged: at most one request per thread, once.
    limiter = Limiter(key_func=client_key, app=app, storage_uri=uri, storage_options=storage_options(uri, timeout_s),
                      strategy="moving-window", headers_enabled=False, in_memory_fallback_enabled=True,
                      swallow_errors=True, key_prefix="unmask-rate")
    _log_through(limiter.logger)
    limiter.request_filter(lambda: request.endpoint in exempt or request.method == "OPTIONS")
    count, period_s = parse_rate(rate)
    if count:
        limiter.shared_limit(f"{count} per {int(period_s)} second", scope=SCOPE)(blueprint)

    @app.errorhandler(RateLimitExceeded)
    def _rate_limited(e):
        current = limiter.current_limit
        retry = retry_after_header(current.window[0] - time.time() if current else 1.0)  # window: (reset, left)
        return error_response(429, "rate_limited", f"too many requests from this client (limit {rate}); "
                              f"retry after {retry} s", {"Retry-After": retry})

    return limiter


def state(limiter) -> dict:
    """Where the counts live now, for /health: `shared` is false while Redis is away."""
    uri = limiter._storage_uri or "memory://"
    kind = uri.split("://", 1)[0]
    dead = bool(getattr(limiter, "_storage_dead", False))
    return {"storage": kind, "shared": kind != "memory" and not dead, "fallback": dead}


def retry_after_header(wait_s: float) -> str:
    """Retry-After takes whole seconds; round up so that the retry succeeds."""
    return str(max(1, math.ceil(wait_s)))


def _log_through(logger: logging.Logger) -> None:
    """Flask-Limiter's lines (storage lost, storage recovered) go where the server's go; its
    line per refused request does not (the 429 is in the access log already)."""
    if log.handlers and not any(h in logger.handlers for h in log.handlers):  # it has a NullHandler of its own
        logger.handlers = list(log.handlers)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    if not any(isinstance(f, _NoBreachLines) for f in logger.filters):
        logger.addFilter(_NoBreachLines())


class _NoBreachLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("ratelimit ")
