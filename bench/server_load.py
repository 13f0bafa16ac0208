"""The server: `unmask serve` (gunicorn) with the bundled ensemble, loaded by a separate
client process (bench/load_client.py) on 127.0.0.1 with 1, 8 and 32 concurrent clients
sending real JPEG files, with the micro-batcher on and off.

Per run: requests/s over the window and per second within it (median, min, max), latency
p50/p95/p99, the batcher's model calls (so the mean batch), and each worker's memory
(VmRSS after the run, VmHWM: its peak) read from /proc. Then the ratio on/off.

Until models/bundled/ensemble exists, the server runs a stand-in made by
tests.synthetic.small_detector(dir / "ensemble", "ensemble") (small members, untrained);
the results say which.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.common import CACHE, ROOT, BenchError, file_hash, image_set, load_average, say, summary

SECTION = "server"
LEVELS = (1, 8, 32)
START_TIMEOUT_S = 300


def measure(smoke: bool, data: Path | None, work: Path) -> dict:
    seconds, warmup = (2.0, 0.5) if smoke else (20.0, 2.0)
    levels = LEVELS[:2] if smoke else LEVELS
    images = image_set(16 if smoke else 64, data, work / "server-images")
    send_list = work / "server-images.txt"
    send_list.write_text("\n".join(str(p) for p in images.paths) + "\n")
    models_dir, model_note = _ensemble_folder(prefer_bundled=not smoke)
    out = {
        "model": model_note,
        "images": images.source,
        "how": (f"python -m bench.load_client: N threads, each with one keep-alive HTTP/1.1 connection, POST "
                f"/api/v1/check with a raw JPEG body, one request after another, for {seconds:g} s after a "
                f"{warmup:g} s warm-up; only answers finished inside the window count. The client shares the "
                "machine's cores with the server."),
        "seconds_per_run": seconds,
        "clients": list(levels),
        "runs": {},
    }
    # Both servers start together (their start-up overlaps); each is measured alone, the other idle.
    servers = {b: Server(models_dir, b) for b in ("on", "off")}
    try:
        for server in servers.values():
            server.start()
        for batching, server in servers.items():
            server.wait()
            out["settings"] = server.settings
            runs = out["runs"][f"batching {batching}"] = {"worker_rss_mib_idle": server.rss()["rss_mib"]}
            for c in levels:
                say(SECTION, f"batching {batching}, {c} client(s), {seconds:g} s (load average {load_average()})")
                runs[str(c)] = server.load(send_list, c, seconds, warmup, work)
            runs["worker_rss_mib_peak"] = server.rss()["hwm_mib"]
            server.stop()
    finally:
        for server in servers.values():
            server.stop()
    out["ratio_on_over_off"] = {
        str(c): {
            "requests_per_s": _ratio(out["runs"]["batching on"][str(c)]["requests_per_s"],
                                     out["runs"]["batching off"][str(c)]["requests_per_s"]),
            "p50_latency": _ratio(out["runs"]["batching on"][str(c)]["latency_ms"]["p50"],
                                  out["runs"]["batching off"][str(c)]["latency_ms"]["p50"]),
        }
        for c in levels
    }
    return out


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def _ensemble_folder(prefer_bundled: bool) -> tuple[Path, str]:
    """The models folder holding `ensemble`: the bundled one, or a cached small stand-in
    (always for --smoke, which must stay fast)."""
    from models.detector import BUNDLED_DIR, MODEL_FILE

    if prefer_bundled and (BUNDLED_DIR / "ensemble" / MODEL_FILE).is_file():
        info = json.loads((BUNDLED_DIR / "ensemble" / "detector.json").read_text())
        return BUNDLED_DIR, f"the bundled ensemble ({BUNDLED_DIR / 'ensemble'}, version {info.get('version')})"
    key = file_hash(ROOT / "tests/synthetic.py", ROOT / "models/architectures.py", ROOT / "models/detector.py")
    folder = CACHE / f"server-ensemble-{key}"
    if not (folder / "ensemble" / MODEL_FILE).is_file():
        say(SECTION, "making the stand-in ensemble with tests.synthetic.small_detector")
        code = ("import sys; from pathlib import Path; from tests.synthetic import small_detector; "
                "small_detector(Path(sys.argv[1]) / 'ensemble', 'ensemble')")
        tmp = Path(tempfile.mkdtemp(prefix="server-ensemble-", dir=_mkdir(CACHE)))
        _run([sys.executable, "-c", code, str(tmp)], "making the stand-in ensemble")
        tmp.rename(folder)
    why = "--smoke" if not prefer_bundled else "models/bundled/ensemble does not exist yet"
    return folder, (f"STAND-IN ({why}): the server ran "
                    "tests.synthetic.small_detector(dir / 'ensemble', 'ensemble'): a tuned CNN with filters (8, 16) "
                    "and MobileNet v1 0.25 at 224 px, untrained; the bundled ensemble is larger and slower")


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def _run(cmd: list[str], what: str, timeout: float = 600) -> None:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise BenchError(f"{what} failed ({r.returncode}):\n{r.stderr[-2000:]}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`unmask serve` on a free port of 127.0.0.1, in its own process group."""

    def __init__(self, models_dir: Path, batching: str, env: dict | None = None):
        self.models_dir = models_dir
        self.batching = batching
        self.env = env or {}  # UNMASK_* settings over the defaults below
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.log = None

    def start(self) -> "Server":
        # No result cache: the client sends the same files again and again, and this measures the model.
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "UNMASK_MODELS_DIR": str(self.models_dir),
               "UNMASK_MODEL": "ensemble", "UNMASK_BATCHING": self.batching, "UNMASK_LOG_LEVEL": "warning",
               "UNMASK_CACHE_TTL_S": "0"}
        for var in ("UNMASK_RATE_LIMIT", "UNMASK_API_KEY", "UNMASK_UPLOAD_DIR"):
            env.pop(var, None)  # the benchmark measures the model path, not these
        env.update(self.env)
        self.log = tempfile.TemporaryFile()
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-m", "training.commands", "serve", "--bind", f"127.0.0.1:{self.port}"],
                                     cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def wait(self) -> "Server":
        self.health = self._wait_healthy()
        self.started_s = round(time.perf_counter() - self.t0, 1)
        from server.config import Config

        cfg = Config.from_env()
        self.settings = {"workers": int(os.environ.get("UNMASK_WORKERS", 1)), "threads": int(os.environ.get("UNMASK_THREADS", 4)),
                         "batch_max": cfg.batch_max, "batch_wait_ms": cfg.batch_wait_ms, "device": self.health.get("device"),
                         "how_started": "unmask serve --bind 127.0.0.1:PORT with UNMASK_BATCHING=on|off, other settings default"}
        say(SECTION, f"server with batching {self.batching} healthy after {self.started_s} s")
        return self

    def _log_tail(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]

    def _wait_healthy(self) -> dict:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"unmask serve exited ({self.proc.returncode}) before it was healthy:\n{self._log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/v1/health", timeout=5) as r:
                    body = json.loads(r.read())
                    if body.get("status") == "ok":
                        return body
            except (OSError, urllib.error.URLError, ValueError):
                pass
            time.sleep(0.5)
        raise BenchError(f"unmask serve was not healthy within {START_TIMEOUT_S} s:\n{self._log_tail()}")

    def batching_stats(self) -> dict:
        with urllib.request.urlopen(f"{self.url}/api/v1/health", timeout=30) as r:
            return json.loads(r.read())["batching"]

    def workers(self) -> list[int]:
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:
                pids.append(int(stat.parent.name))
        return sorted(pids)

    def rss(self) -> dict:
        """MiB of each worker: resident now (VmRSS) and at its peak (VmHWM)."""
        rss, hwm = {}, {}
        for pid in self.workers():
            status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
            rss[str(pid)] = round(int(status["VmRSS"].split()[0]) / 1024, 1)
            hwm[str(pid)] = round(int(status["VmHWM"].split()[0]) / 1024, 1)
        if not rss:
            raise BenchError(f"no gunicorn worker found under process {self.proc.pid}")
        return {"rss_mib": rss, "hwm_mib": hwm}

    def load(self, send_list: Path, concurrency: int, seconds: float, warmup: float, work: Path) -> dict:
        before = self.batching_stats()
        result_file = work / f"load-{self.batching}-{concurrency}.json"
        cmd = [sys.executable, "-m", "bench.load_client", "--url", self.url, "--list", str(send_list),
               "--concurrency", str(concurrency), "--seconds", str(seconds), "--warmup", str(warmup), "--out", str(result_file)]
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=seconds + warmup + 300)
        if r.returncode != 0:
            raise BenchError(f"the load client failed ({r.returncode}): {r.stderr[-2000:]}")
        res = json.loads(result_file.read_text())
        after = self.batching_stats()
        if not res["requests"]:
            raise BenchError(f"no request succeeded with {concurrency} clients (statuses {res['statuses']}, "
                             f"errors {res['error_examples']}); server log:\n{self._log_tail()}")
        calls = after["model_calls"] - before["model_calls"]
        inputs = after["inputs"] - before["inputs"]
        return {
            "requests": res["requests"], "errors": res["errors"], "statuses": res["statuses"],
            "requests_per_s": round(res["requests"] / seconds, 2),
            "requests_per_s_each_second": summary(res["per_second"], digits=1) if res["per_second"] else None,
            "latency_ms": {k: round(v, 1) for k, v in _latency(res["latencies_ms"]).items()},
            "model_calls": calls, "mean_batch": round(inputs / calls, 2) if calls else None,
            "largest_batch_so_far": after["largest_batch"],
            "worker_rss_mib": self.rss()["rss_mib"],
        }

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        if self.log:
            self.log.close()


def _latency(values: list[float]) -> dict:
    from bench.common import percentile

    return {"p50": percentile(values, 50), "p95": percentile(values, 95), "p99": percentile(values, 99),
            "min": min(values), "max": max(values)}
