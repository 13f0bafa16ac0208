"""`unmask serve` refuses to start what cannot work, with a message a person understands;
a server whose model went missing says so through HTTP instead of crashing."""
from __future__ import annotations

import socket
import subprocess
import sys

from tests.server.conftest import ROOT, UNMASK, free_port, run_server, server_env


def serve(tmp_path, models_dir, *args, **settings):
    env = server_env(models_dir, tmp_path, **settings)
    return subprocess.run(UNMASK + ["serve", *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_missing_model_is_refused_before_starting(tmp_path):
    empty = tmp_path / "no-models"
    empty.mkdir()
    out = serve(tmp_path, empty, "--bind", f"127.0.0.1:{free_port()}")
    assert out.returncode == 2
    assert "unmask serve: error:" in out.stderr and "ensemble" in out.stderr and "make models" in out.stderr
    assert "Traceback" not in out.stderr


def test_bad_bind_and_settings_are_refused(tmp_path, models_dir):
    out = serve(tmp_path, models_dir, "--bind", "localhost")
    assert out.returncode == 2 and "HOST:PORT" in out.stderr
    out = serve(tmp_path, models_dir, "--bind", f"127.0.0.1:{free_port()}", workers="two")
    assert out.returncode == 2 and "UNMASK_WORKERS" in out.stderr
    out = serve(tmp_path, models_dir, "--bind", f"127.0.0.1:{free_port()}", rate_limit="fast")
    assert out.returncode == 2 and "COUNT/minute" in out.stderr


def test_port_in_use_is_refused(tmp_path, models_dir):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = serve(tmp_path, models_dir, "--bind", f"127.0.0.1:{port}")
    assert out.returncode == 2 and "cannot listen" in out.stderr and "--bind" in out.stderr


def test_server_without_its_model_answers_503_with_the_reason(tmp_path):
    empty = tmp_path / "no-models"
    empty.mkdir()
    gunicorn = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "server" / "gunicorn_conf.py")]
    with run_server(tmp_path, empty, command=gunicorn, workers=1, threads=2) as server:
        health = server.get("/api/v1/health")
        assert health.status_code == 503
        assert health.json()["status"] == "error" and "make models" in health.json()["error"]
        r = server.post("/api/v1/check", data=b"\xff\xd8\xff" + bytes(100), headers={"Content-Type": "image/jpeg"})
        assert r.status_code == 503 and r.json()["error"] == "model_unavailable"
        assert "make models" in r.json()["message"]
        assert server.get("/").status_code == 200  # the page still loads and can show the message
