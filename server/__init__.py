"""The second-opinion server: a Flask application factory.

    gunicorn -c server/gunicorn_conf.py      # or: unmask serve [--bind HOST:PORT]

`create_app(config)` reads settings from the environment (server/config.py), which the dict
`config` overrides, loads the model once for this process, and mounts two blueprints: the
JSON API under /api/v1 (server/api.py) and the page at / (server/pages.py).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from flask import Flask, g, request

from server.config import Config

log = logging.getLogger("unmask.server")


@dataclass
class ServerState:
    config: Config
    detection: object
    limiter: object  # flask_limiter.Limiter (server/ratelimit.py)
    feedback: object  # server.feedback.Feedback: the reports' store, opened on first use
    cache: object  # server.cache.ResultCache


def create_app(config: dict | None = None, load_model: bool = True) -> Flask:
    """The application. `load_model=False` leaves the model unloaded (for tools that only
    inspect the routes); requests that need it then answer 503."""
    from werkzeug.exceptions import HTTPException
    from werkzeug.middleware.proxy_fix import ProxyFix

    from server import api, feedback, pages, ratelimit, uploads
    from server.cache import ResultCache
    from server.responses import error_response
    from server.detection import Detection, ModelUnavailable
    from server.worker import SlowRequest

    cfg = Config.from_env().updated(config).validate()
    _log_through_gunicorn()
    app = Flask(__name__, static_folder="static", static_url_path="/static")
    app.config["UNMASK_VERSION"] = _package_version()
    # Werkzeug's own cap: nothing larger than a video is read at all.
    app.config["MAX_CONTENT_LENGTH"] = max(cfg.max_image_bytes, cfg.max_video_bytes) + api.FORM_OVERHEAD
    app.json.sort_keys = False
    if cfg.trust_proxy:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)

    detection = Detection(cfg)
    limiter = ratelimit.install(app, api.bp, api.PUBLIC, cfg.rate_limit, cfg.storage_uri, cfg.storage_timeout_s)
    cache = ResultCache(cfg.storage_uri, cfg.storage_timeout_s, cfg.cache_ttl_s, cfg.cache_entries)
    app.extensions["unmask"] = ServerState(cfg, detection, limiter, feedback.Feedback(cfg.feedback_uri), cache)
    uploads.sweep_orphans(cfg.tmp_dir)  # files of workers that were killed
    if load_model:
        detection.load()

    if cfg.cors_origins:
        from flask_cors import CORS

        CORS(app, resources={r"/api/*": {"origins": cfg.cors_origins}}, allow_headers=["Content-Type", "X-API-Key"],
             expose_headers=["Retry-After", "X-Unmask-Target", "X-Unmask-Faces"], methods=["GET", "POST", "OPTIONS"], max_age=600)

    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)

    @app.errorhandler(api.ApiError)
    def _api_error(e):
        return error_response(e.status, e.code, e.message, e.headers)

    @app.errorhandler(uploads.UploadError)
    def _upload_error(e):
        return error_response(e.status, e.code, e.message)

    @app.errorhandler(SlowRequest)
    def _slow(e=None):
        # The body came too slowly (server/worker.py): answer, then close the connection.
        resp = error_response(408, "request_timeout", "the request arrived too slowly: the whole file must arrive "
                                  "within the server's read timeout; send it again on a faster connection")
        resp.headers["Connection"] = "close"
        return resp

    @app.errorhandler(ModelUnavailable)
    def _no_model(e):
        return error_response(503, "model_unavailable", f"the model is not available: {e}")

    @app.errorhandler(HTTPException)
    def _http_error(e):
        if isinstance(e.__context__, SlowRequest):  # Werkzeug's stream calls it a disconnection
            return _slow()
        messages = {
            404: "no such page or endpoint; see /api/v1/openapi.json for the API",
            405: f"{request.method} is not allowed here; see /api/v1/openapi.json",
            413: "the upload is larger than the limit: images up to "
                 f"{cfg.max_image_bytes / 2**20:.0f} MB, videos up to {cfg.max_video_bytes / 2**20:.0f} MB",
        }
        code = (e.name or "error").lower().replace(" ", "_")
        return error_response(e.code or 500, code, messages.get(e.code, e.description or e.name))

    @app.errorhandler(Exception)
    def _crash(e):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "the server failed on this request; try again, "
                                  "and report it if it keeps happening")

    @app.before_request
    def _start_clock():
        g.setdefault("started", time.perf_counter())

    @app.before_request
    def _refuse_other_sites():
        # Browsers name the page that sent a request in Origin (no-cors form posts too): a
        # page of another site must not use this server, the user's browser as its client.
        origin = request.headers.get("Origin")
        if origin is None or origin_allowed(origin, cfg.cors_origins):
            return None
        return error_response(403, "origin_refused", f"requests from pages at {origin[:200]} are refused; "
                                  "if that is your own client, add its origin to UNMASK_CORS_ORIGINS")

    @app.after_request
    def _access_log(resp):
        # What happened, never what was sent: no file names, no content.
        if request.path.startswith("/api/"):
            ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
            log.info("%s %s %d in=%s out=%s %.0fms%s%s", request.method, request.path, resp.status_code,
                     request.content_length or 0, resp.calculate_content_length() or "-", ms,
                     f" verdict={g.verdict}" if "verdict" in g else "", f" cache={g.cache}" if "cache" in g else "")
            if "cache" in g:
                resp.headers["X-Unmask-Cache"] = g.cache
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        # No other site may frame anything of ours (the page's CSP says frame-ancestors too).
        resp.headers.setdefault("X-Frame-Options", "DENY")
        return resp

    return app


def origin_allowed(origin: str, listed: list[str]) -> bool:
    """A request's Origin is this server's own (the host the browser asked for, or what its
    Sec-Fetch-Site says), or one the settings list."""
    from urllib.parse import urlsplit

    if origin in listed:
        return True
    if request.headers.get("Sec-Fetch-Site") == "same-origin":
        return True
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:
        return False
    return bool(netloc) and netloc.lower() == request.host.lower()


def _log_through_gunicorn() -> None:
    """Under gunicorn, our lines go where its error log goes."""
    gunicorn_log = logging.getLogger("gunicorn.error")
    if gunicorn_log.handlers and not log.handlers:
        log.handlers = list(gunicorn_log.handlers)
        log.setLevel(logging.INFO)
        log.propagate = False


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("unmask")
    except PackageNotFoundError:
        return "unknown"
