"""Soak: two `unmask serve` servers sharing one Redis, loaded for a long while, with faults.

Two servers (2 workers x 4 threads each, the rate limit and the result cache in one real
redis-server started here, a limit high enough not to refuse anyone) take 32 clients for 10
minutes, half on each server (a load balancer's round robin, without the balancer), each
client sending real JPEGs one after another and sending a request again, up to twice, when
its connection fails before an answer. Midway a worker of the first server is killed with
SIGKILL; at three quarters Redis is stopped and started again. Figures: requests served,
answers by status, connection errors by kind (retried), requests lost (sent, never
answered), latency p50/p99, whether the killed worker was replaced and whether both servers
went back to Redis, and the machine's load.

Then the result cache's hit latency: one picture sent again and again to one server after
its first check (client round trip and the server's own time_ms), and the cache's lookup
itself against the same Redis, p50/p95 (target: under 5 ms p95).

--smoke: 8 s, 2 clients per server, the small stand-in ensemble.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from bench.common import ROOT, BenchError, image_set, load_average, percentile, say

SECTION = "soak"


def measure(smoke: bool, data: Path | None, work: Path) -> dict:
    from bench.server_load import Server, _ensemble_folder
    from tests.redis_server import RedisServer

    seconds, clients = (8.0, 4) if smoke else (600.0, 32)
    images = image_set(16 if smoke else 64, data, work / "soak-images")
    send_list = work / "soak-images.txt"
    send_list.write_text("\n".join(str(p) for p in images.paths) + "\n")
    models_dir, model_note = _ensemble_folder(prefer_bundled=not smoke)
    (work / "redis").mkdir(parents=True, exist_ok=True)
    redis = RedisServer(work / "redis").start()
    env = {"UNMASK_STORAGE_URI": redis.uri, "UNMASK_RATE_LIMIT": "1000000/hour", "UNMASK_WORKERS": "2", "UNMASK_CACHE_TTL_S": "86400",
           "UNMASK_THREADS": "4"}
    servers = [Server(models_dir, "on", env) for _ in range(2)]
    out = {"model": model_note, "images": images.source, "seconds": seconds, "clients": clients,
           "how": (f"two servers (unmask serve, 2 workers x 4 threads each, UNMASK_STORAGE_URI=redis://..., a rate "
                   f"limit of 1000000/hour) take {clients} clients for {seconds:g} s, half on each (bench.load_client "
                   "--retries 2: a request whose connection fails is sent again, twice at most); a worker of the "
                   "first server is killed with SIGKILL at half time, Redis is stopped and started again at three "
                   "quarters; lost = sent and never answered"),
           "load_average_during": []}
    try:
        for s in servers:
            s.start()
        for s in servers:
            s.wait()
        events, stop = [], threading.Event()
        faults = threading.Thread(target=_faults, args=(servers[0], redis, seconds, events, stop), daemon=True)
        loads = [_client(s, send_list, clients // 2, seconds, work / f"soak-{i}.json") for i, s in enumerate(servers)]
        started = time.monotonic()
        faults.start()
        while any(p.poll() is None for p in loads):
            if time.monotonic() - started > seconds + 600:
                for p in loads:
                    p.kill()
                raise BenchError("the soak's clients did not finish")
            out["load_average_during"].append(load_average()[0])
            time.sleep(min(30.0, seconds / 4))
        stop.set()
        faults.join(60)
        results = []
        for i, p in enumerate(loads):
            if p.returncode != 0:
                raise BenchError(f"the soak client failed ({p.returncode}): {p.stderr.read()[-2000:]}")
            results.append(json.loads((work / f"soak-{i}.json").read_text()))
        out.update(_figures(results, seconds))
        out["events"] = events
        out["after"] = {f"server {i + 1}": _after(s) for i, s in enumerate(servers)}
        say(SECTION, f"served {out['served']}, lost {out['lost']}, statuses {out['statuses']}, "
                     f"connection errors {out['connection_errors']}")
        out["cache_hit"] = _cache_hit(servers[1], images.paths[0], redis.uri, 30 if smoke else 300)
    finally:
        for s in servers:
            s.stop()
        redis.stop()
    return out


def _client(server, send_list: Path, concurrency: int, seconds: float, out: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "bench.load_client", "--url", server.url, "--list", str(send_list), "--concurrency",
           str(concurrency), "--seconds", str(seconds), "--warmup", "1", "--retries", "2", "--out", str(out)]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _faults(server, redis, seconds: float, events: list, stop: threading.Event) -> None:
    """SIGKILL a worker of `server` at half time; stop and start Redis at three quarters."""
    t0 = time.monotonic()
    if stop.wait(1 + seconds / 2):
        return
    pids = server.workers()
    if pids:
        os.kill(pids[0], signal.SIGKILL)
        events.append({"at_s": round(time.monotonic() - t0, 1), "what": f"SIGKILL worker {pids[0]} of server 1"})
    if stop.wait(max(0.0, 1 + 0.75 * seconds - (time.monotonic() - t0))):
        return
    redis.stop()
    events.append({"at_s": round(time.monotonic() - t0, 1), "what": "Redis stopped"})
    time.sleep(min(5.0, seconds / 8))
    redis.start()
    events.append({"at_s": round(time.monotonic() - t0, 1), "what": "Redis started again"})


def _figures(results: list[dict], seconds: float) -> dict:
    statuses: dict[str, int] = {}
    kinds: dict[str, int] = {}
    for r in results:
        for k, v in r["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
        for k, v in r["connection_errors"].items():
            kinds[k] = kinds.get(k, 0) + v
    latencies = [x for r in results for x in r["latencies_ms"]]
    served = statuses.get("200", 0)
    return {
        "served": served, "requests_per_s": round(served / seconds, 2), "statuses": statuses,
        "server_errors_5xx": sum(v for k, v in statuses.items() if k.startswith("5")),
        "connection_errors": kinds, "retried": sum(r["retried"] for r in results), "lost": sum(r["lost"] for r in results),
        "lost_examples": [e for r in results for e in r["error_examples"]][:3],
        "latency_ms": {"p50": round(percentile(latencies, 50), 1), "p99": round(percentile(latencies, 99), 1)} if latencies else None,
    }


def _health(server) -> dict:
    with urllib.request.urlopen(f"{server.url}/api/v1/health", timeout=30) as r:
        return json.loads(r.read())


def _after(server) -> dict:
    """Workers alive now, and what the workers that answer a few health calls say of Redis."""
    answers = []
    for _ in range(12):
        h = _health(server)
        answers.append({"rate_limit_shared": h["rate_limit"]["shared"], "cache_shared": h["cache"]["shared"]})
    # The requests the server failed (server/__init__.py logs each 5xx with its traceback; the
    # killed worker and the swallowed limiter errors are not failures): counted, and the last
    # line of the first few, so that a failure in the results says what it was.
    server.log.seek(0)
    lines = server.log.read().decode(errors="replace").splitlines()
    errors = [i for i, line in enumerate(lines) if "[ERROR] unhandled error" in line]
    said = []
    for i in errors[:3]:
        tail = next((lines[j] for j in range(i + 1, min(i + 80, len(lines))) if lines[j] and not lines[j].startswith((" ", "Traceback", "["))), "")
        said.append(f"{lines[i].split('] ', 3)[-1]}: {tail}"[:300])
    return {"workers": len(server.workers()), "health_answers": len(answers),
            "sharing_redis": sum(a["rate_limit_shared"] and a["cache_shared"] for a in answers),
            "failed_requests_logged": len(errors), "error_examples": said}


def _cache_hit(server, image: Path, redis_uri: str, n: int) -> dict:
    """Hit latency: the same picture again and again after its first check (over HTTP), and the
    cache's lookup itself (server.cache.ResultCache.get against the same Redis)."""
    from bench.common import summary
    from server.cache import ResultCache

    body = image.read_bytes()
    # Hits are measured once Redis is shared again by every worker (each asks again every
    # second after an outage, server/cache.py): a dozen health answers in a row say so.
    t0, in_a_row = time.monotonic(), 0
    while in_a_row < 12:
        in_a_row = in_a_row + 1 if _health(server)["cache"]["shared"] else 0
        if time.monotonic() - t0 > 60:
            raise BenchError("the server's workers did not share the result cache in Redis again within 60 s")
        time.sleep(0.05)
    waited = time.monotonic() - t0

    def post() -> tuple[float, dict, str]:
        req = urllib.request.Request(f"{server.url}/api/v1/check", body, {"Content-Type": "image/jpeg"})
        t0 = time.perf_counter()
        with urllib.request.urlopen(req, timeout=120) as r:
            answer = json.loads(r.read())
            return 1000 * (time.perf_counter() - t0), answer, r.headers.get("X-Unmask-Cache", "")

    _, first, _ = post()
    round_trip, server_ms, hits = [], [], 0
    for _ in range(n):
        ms, answer, cache = post()
        hits += cache == "hit"
        round_trip.append(ms)
        server_ms.append(answer["time_ms"])
    cache = ResultCache(redis_uri)
    cache.put("bench-hit", first)
    lookups = []
    for _ in range(n):
        cache._memory.clear()  # from Redis each time, as another server would read it
        t0 = time.perf_counter()
        cache.get("bench-hit")
        lookups.append(1000 * (time.perf_counter() - t0))
    out = {"requests": n, "hits": hits, "waited_for_sharing_s": round(waited, 2),
           "http_round_trip_ms": summary(round_trip, p95=True), "server_time_ms": summary(server_ms, p95=True),
           "redis_lookup_ms": summary(lookups, p95=True)}
    out["target_p95_ms"] = {"target": 5, "server_time_p95": out["server_time_ms"]["p95"],
                            "met": out["server_time_ms"]["p95"] <= 5}
    say(SECTION, f"cache hits {hits}/{n}: server time p95 {out['server_time_ms']['p95']:.2f} ms, "
                 f"Redis lookup p95 {out['redis_lookup_ms']['p95']:.2f} ms")
    return out
