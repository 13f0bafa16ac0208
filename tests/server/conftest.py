"""A real gunicorn, started with `unmask serve` on a free port of 127.0.0.1, per test module.

The model is the real ensemble architecture in its small test variant
(tests.synthetic.small_detector), found through UNMASK_MODELS_DIR like the bundled one.
"""
from __future__ import annotations

import contextlib
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
# The `unmask` command of this environment (the console script setup.cfg installs).
_SCRIPT = Path(sys.executable).with_name("unmask")
UNMASK = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "training.commands"]
BOOT_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_ensemble(models_dir: Path, **thresholds) -> Path:
    """models_dir/ensemble: the ensemble architecture, small, saved like a bundled model."""
    from tests.synthetic import small_detector

    small_detector(models_dir / "ensemble", "ensemble", **thresholds)
    return models_dir


def server_env(models_dir: Path, tmp: Path, **settings) -> dict:
    env = os.environ.copy()
    env.update(
        UNMASK_MODELS_DIR=str(models_dir),
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONPATH=str(ROOT),
        TMPDIR=str(tmp),  # anything the server writes to temp lands where a test can look
    )
    for k in [k for k in env if k.startswith("UNMASK_") and k != "UNMASK_MODELS_DIR"]:
        del env[k]
    env.update({f"UNMASK_{k.upper()}": str(v) for k, v in settings.items()})
    return env


class Server:
    def __init__(self, base: str, proc: subprocess.Popen, log_path: Path, workdir: Path, tmp: Path):
        self.base, self.proc, self.log_path, self.workdir, self.tmp = base, proc, log_path, workdir, tmp

    def url(self, path: str) -> str:
        return self.base + path

    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.url(path), timeout=kw.pop("timeout", 120), **kw)

    def post(self, path: str, **kw) -> requests.Response:
        return requests.post(self.url(path), timeout=kw.pop("timeout", 120), **kw)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def run_server(root: Path, models_dir: Path, command: list[str] | None = None, **settings):
    """Start `unmask serve` with UNMASK_* `settings`, wait until health answers, and stop
    it afterwards. Its working directory and TMPDIR are empty folders under `root`."""
    workdir, tmp = root / "cwd", root / "tmp"
    workdir.mkdir(parents=True, exist_ok=True)
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = root / "server.log"
    env = server_env(models_dir, tmp, **settings)
    cmd = command or UNMASK + ["serve", "--bind", f"127.0.0.1:{port}"]
    if command:
        env["UNMASK_BIND"] = f"127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", proc, log_path, workdir, tmp)
    try:
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the server exited with {proc.returncode}:\n{server.log()[-3000:]}")
            try:
                if server.get("/api/v1/health", timeout=5).status_code in (200, 503):
                    break
            except requests.RequestException:  # not listening yet, or no worker ready
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not answer within {BOOT_TIMEOUT_S} s:\n{server.log()[-3000:]}")
            time.sleep(0.3)
        yield server
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def worker_pids(server: Server) -> set[int]:
    """The pids of the gunicorn workers: the children of its master (`unmask serve` became
    the master). /health does not tell them."""
    pid = server.proc.pid
    return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    from tests.redis_server import RedisServer

    try:
        server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    except RuntimeError as e:
        pytest.fail(str(e))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """The small ensemble, untrained, with a hand-set calibration that calls everything
    `real` (its scores stay near 0.5, under the 0.9 real threshold): tests can then watch
    provenance push a verdict to `fake`."""
    return build_ensemble(tmp_path_factory.mktemp("models"), fake_threshold=0.99, real_threshold=0.9)


class Listener:
    """A local HTTP server that records every request: proof that nobody fetched a URL."""

    def __init__(self):
        self.hits: list[str] = []
        hits = self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                self.send_response(404)
                self.end_headers()

            do_POST = do_HEAD = do_GET

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def listener():
    lst = Listener()
    yield lst
    lst.close()
