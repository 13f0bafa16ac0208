"""gunicorn configuration, from the environment (server/config.py: gunicorn_settings).

    UNMASK_BIND=127.0.0.1:8000 UNMASK_WORKERS=2 gunicorn -c server/gunicorn_conf.py   # behind a proxy (server/README.md)

Each worker is a process with its own copy of the model (loaded once, when it starts) and
UNMASK_THREADS threads whose requests the micro-batcher gathers. Workers are not preloaded:
TensorFlow must start after the fork.
"""
from server.config import Config, gunicorn_settings

_s = gunicorn_settings()
bind = _s["bind"]
workers = _s["workers"]
threads = _s["threads"]
# gthread, with a deadline for reading each request (UNMASK_READ_TIMEOUT): slow clients
# cannot hold the threads.
worker_class = "server.worker.DeadlineThreadWorker"
timeout = _s["timeout"]
graceful_timeout = _s["graceful_timeout"]
keepalive = _s["keepalive"]
loglevel = _s["loglevel"]
errorlog = "-"
accesslog = _s["accesslog"]
# The path only: query strings and bodies never reach the log.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'
wsgi_app = "server:create_app()"
preload_app = False
# gunicorn 25+ opens a control socket in $HOME by default; two servers would share it.
control_socket_disable = True
proc_name = "unmask-server"


def child_exit(server, worker):
    # A worker killed mid-request cannot remove its temporary files: remove them for it.
    from server.uploads import sweep_orphans

    removed = sweep_orphans(Config.from_env().tmp_dir, pid=worker.pid)
    if removed:
        server.log.info("removed %d temporary file(s) left by worker %s", removed, worker.pid)
