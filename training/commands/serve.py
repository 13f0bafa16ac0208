"""Run the second-opinion server under gunicorn (http://127.0.0.1:8000 by default).

    unmask serve                              # 127.0.0.1:8000, the bundled ensemble
    unmask serve --bind 127.0.0.1:8080 --workers 2   # others reach it through a reverse proxy

Everything else comes from UNMASK_* environment variables (see server/README.md): the
model, size limits, API key, rate limit, CORS origins, batching, threads and timeouts.
"""
from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

CONF = Path(__file__).resolve().parents[2] / "server" / "gunicorn_conf.py"


def add_arguments(p):
    p.add_argument("--bind", metavar="HOST:PORT", help="address to listen on (default: $UNMASK_BIND or 127.0.0.1:8000)")
    p.add_argument("--workers", type=int, help="worker processes, each with its own model (default: $UNMASK_WORKERS or 1)")
    p.add_argument("--threads", type=int, help="request threads per worker (default: $UNMASK_THREADS or 4)")
    p.add_argument("--model", help="bundled model name or run folder (default: $UNMASK_MODEL or ensemble)")


def run(args) -> int:
    from models.detector import resolve
    from server.config import Config, gunicorn_settings, parse_bind

    for flag, var in (("bind", "UNMASK_BIND"), ("workers", "UNMASK_WORKERS"), ("threads", "UNMASK_THREADS"), ("model", "UNMASK_MODEL")):
        value = getattr(args, flag)
        if value is not None:
            os.environ[var] = str(value)
    # Refuse early, with a clear message, what would otherwise crash every worker.
    cfg = Config.from_env().validate()
    settings = gunicorn_settings()
    resolve(cfg.model)  # ModelNotFound says how to build the bundled models
    host, port = parse_bind(settings["bind"])
    _check_free(host, port)
    print(f"unmask serve: {cfg.model} on http://{settings['bind']} "
          f"({settings['workers']} worker(s) x {settings['threads']} threads)", file=sys.stderr, flush=True)
    if cfg.rate_limit and settings["workers"] > 1 and cfg.storage_uri.startswith("memory"):
        print(f"unmask serve: the rate limit is counted by each of the {settings['workers']} workers alone "
              "(memory://); set UNMASK_STORAGE_URI=redis://HOST:PORT to count once for all", file=sys.stderr, flush=True)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # gunicorn replaces this process, so that signals (Ctrl-C, SIGTERM) reach it directly.
    os.execv(sys.executable, [sys.executable, "-m", "gunicorn", "-c", str(CONF)])
    return 0  # not reached


def _check_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise ValueError(f"cannot listen on {host}:{port} ({e.strerror}); pick another address with --bind") from None
