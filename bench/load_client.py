"""The load client for the server benchmark, run as its own process (the server's CPU time
and the client's are not mixed in one interpreter).

    python -m bench.load_client --url http://127.0.0.1:PORT --list FILES.txt --concurrency 8 \
        --seconds 20 --warmup 2 --out result.json

Each of `concurrency` threads keeps one HTTP/1.1 connection and sends image after image (raw
JPEG bodies to POST /api/v1/check, cycling through the files listed in FILES.txt, one path a
line), waiting for each answer before the next. Requests that finish within the measured window (after the warm-up) count. Writes
{requests, errors, statuses, seconds, per_second: [...], latencies_ms: [...], connection_errors,
retried, lost} as JSON (--retries: see run).
"""
from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse


def run(url: str, bodies: list[bytes], concurrency: int, seconds: float, warmup: float, retries: int = 0) -> dict:
    """With `retries`, a request whose connection fails before an answer (a worker killed under
    it, a server restarting) is sent again on a new connection, up to that many times; one
    that never gets an answer is `lost`."""
    u = urlparse(url)
    start = time.perf_counter() + 0.2  # every thread starts together
    measure_from = start + warmup
    end = measure_from + seconds
    lock = threading.Lock()
    done: list[tuple[float, float, int]] = []  # (finished at, latency s, status)
    errors: list[str] = []
    kinds: dict[str, int] = {}  # connection errors by exception name, retried or not
    counts = {"retried": 0, "lost": 0}

    def client(k: int):
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
        i = k
        while time.perf_counter() < start:
            time.sleep(0.001)
        while time.perf_counter() < end:
            body = bodies[i % len(bodies)]
            i += concurrency
            t0 = time.perf_counter()
            for attempt in range(retries + 1):
                try:
                    conn.request("POST", "/api/v1/check", body, {"Content-Type": "image/jpeg"})
                    resp = conn.getresponse()
                    resp.read()
                    status = resp.status
                    break
                except (OSError, http.client.HTTPException) as e:
                    t1 = time.perf_counter()
                    conn.close()
                    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
                    with lock:
                        kinds[type(e).__name__] = kinds.get(type(e).__name__, 0) + 1
                        if attempt < retries:
                            counts["retried"] += 1
                        elif measure_from <= t1 <= end:
                            errors.append(f"{type(e).__name__}: {e}")
                            counts["lost"] += 1
            else:
                continue
            t1 = time.perf_counter()
            if measure_from <= t1 <= end:
                with lock:
                    done.append((t1, t1 - t0, status))
        conn.close()

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = [d for d in done if d[2] == 200]
    statuses: dict[str, int] = {}
    for d in done:
        statuses[str(d[2])] = statuses.get(str(d[2]), 0) + 1
    per_second = [0] * int(seconds)
    for t1, _, _ in ok:
        slot = int(t1 - measure_from)
        if slot < len(per_second):
            per_second[slot] += 1
    return {
        "concurrency": concurrency, "seconds": seconds, "warmup_s": warmup,
        "requests": len(ok), "errors": len(errors) + len(done) - len(ok), "statuses": statuses,
        "error_examples": errors[:3], "connection_errors": kinds, **counts,
        "per_second": per_second,
        "latencies_ms": [round(1000 * d[1], 3) for d in ok],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True)
    p.add_argument("--list", required=True, help="a text file naming the JPEG files to send, one path a line")
    p.add_argument("--concurrency", type=int, required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--retries", type=int, default=0, help="send a request again this often when its connection fails")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    try:
        files = [Path(line) for line in Path(a.list).read_text().splitlines() if line.strip()]
        bodies = [f.read_bytes() for f in files]
    except OSError as e:
        print(f"load_client: error: cannot read the images to send: {e}", file=sys.stderr)
        return 2
    if not bodies:
        print(f"load_client: error: {a.list} names no files", file=sys.stderr)
        return 2
    result = run(a.url, bodies, a.concurrency, a.seconds, a.warmup, a.retries)
    Path(a.out).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
