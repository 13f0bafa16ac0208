"""The JSON API, version 1: /api/v1/... (described by server/openapi.json).

Every error is a JSON body {"error": CODE, "message": "...", "status": N} whose message
says what went wrong and what to do about it.
"""
from __future__ import annotations

import hmac
import json
import logging
import time
from pathlib import Path

from flask import Blueprint, Response, current_app, g, jsonify, request

from server import uploads
from server.cache import result_key
from server.uploads import IMAGE_KINDS, VIDEO_KINDS

bp = Blueprint("api", __name__, url_prefix="/api/v1")
log = logging.getLogger("unmask.server")

OPENAPI_PATH = Path(__file__).with_name("openapi.json")
PUBLIC = {"api.health", "api.openapi"}  # no key and no rate limit: monitors poll these
FORM_OVERHEAD = 64 * 1024  # multipart boundaries and headers around the file
# models.preprocessing.ImageError reasons -> HTTP status (default 400)
IMAGE_ERROR_STATUS = {"unsupported": 415, "too_many_pixels": 413}
VIDEO_ERROR_STATUS = {"too_long": 413, "unreadable": 500}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def _state():
    return current_app.extensions["unmask"]


# --- guards: size, key, rate ------------------------------------------------------------
@bp.before_request
def guard():
    cfg = _state().config
    limits = {"api.check": cfg.max_image_bytes, "api.explain": cfg.max_image_bytes, "api.check_video": cfg.max_video_bytes,
              "api.check_frames": max_frames() * (cfg.max_image_bytes + FORM_OVERHEAD)}
    if request.endpoint == "api.feedback":  # the picture travels as base64: 4/3 of its bytes
        limits["api.feedback"] = cfg.max_image_bytes * 4 // 3
    if request.endpoint in limits:
        # Werkzeug refuses a larger body with 413 before reading it.
        request.max_content_length = limits[request.endpoint] + FORM_OVERHEAD
    if request.endpoint in PUBLIC or request.method == "OPTIONS":
        return None
    # The rate limit (server/ratelimit.py) ran before this, so guessing the key is limited too.
    if not key_ok(cfg):
        why = "is wrong" if request.headers.get("X-API-Key") else "is missing"
        raise ApiError(401, "unauthorized", f"the API key {why}: send it in the X-API-Key header")
    return None


def key_ok(cfg) -> bool:
    """Whether this request may use the API: no key is configured, or it sent the right one."""
    if not cfg.api_key:
        return True
    sent = request.headers.get("X-API-Key", "")
    return bool(sent) and hmac.compare_digest(sent.encode(), cfg.api_key.encode())


# --- endpoints --------------------------------------------------------------------------
@bp.post("/check")
def check():
    """The faces in one image, each with its verdict, the picture's verdict, and provenance."""
    state = _state()
    detection = state.detection
    detection.require()
    upload = uploads.read_upload(request, IMAGE_KINDS, state.config.max_image_bytes)
    checked = _checked(upload)
    body = detection.image_result(checked["result"], checked["provenance"])
    body.update(_common(upload, detection), image=checked["image"], provenance=checked["provenance"])
    _store(upload, body)
    g.verdict = body["verdict"]
    return jsonify(body)


@bp.post("/check/video")
def check_video():
    """Sampled frames checked like images (every face), an aggregate verdict and a timeline."""
    from models.preprocessing import ImageError
    from models.video import VideoError, sample_frames

    state = _state()
    cfg = state.config
    detection = state.detection
    detection.require()
    upload = uploads.read_upload(request, VIDEO_KINDS, cfg.max_video_bytes)
    with uploads.temp_file(cfg.tmp_dir, upload.data, uploads.EXTENSION[upload.kind]) as path:
        try:
            frames = sample_frames(path, n_frames=cfg.video_frames)
        except VideoError as e:
            raise ApiError(VIDEO_ERROR_STATUS.get(e.reason, 400), e.reason, str(e)) from None
    provenance = _provenance(upload)
    try:
        body = detection.check_video(frames, provenance)
    except ImageError as e:  # frames too small to hold a face
        raise _image_error(e) from None
    body.update(_common(upload, detection), provenance=provenance)
    _store(upload, body)
    g.verdict = body["verdict"]
    return jsonify(body)


def max_frames() -> int:
    from models.video import video_rules

    return int(video_rules()["sampling"]["max_frames"])


@bp.post("/check/frames")
def check_frames():
    """Frames a client took from a playing video (JPEG or PNG, in time order): each checked like
    an image, faces tracked across them and the video judged as an uploaded video is. The
    extension's second opinion: the video file itself never travels."""
    from models.preprocessing import ImageError

    state = _state()
    detection = state.detection
    detection.require()
    frames, times = uploads.read_frames(request, max_frames(), state.config.max_image_bytes)
    images = [_decode(f) for f in frames]
    try:
        body = detection.check_frames(images, times)
    except ImageError as e:
        raise _image_error(e) from None
    d = detection.require()
    body.update(model={"name": d.name, "version": d.version, "device": detection.device},
                file={"type": "frames", "frames": len(frames), "bytes": sum(len(f.data) for f in frames)},
                time_ms=round((time.perf_counter() - g.started) * 1000, 1))
    g.verdict = body["verdict"]
    return jsonify(body)


@bp.post("/explain")
def explain():
    """A PNG of the image with each face's Grad-CAM heatmap laid over it and its box drawn,
    or (?draw=heat) the heat alone, transparent away from the faces."""
    state = _state()
    target = request.args.get("target", "verdict")
    if target not in ("verdict", "fake", "real"):
        raise ApiError(400, "bad_target", "target must be verdict, fake or real")
    draw = request.args.get("draw", "picture")
    if draw not in ("picture", "heat"):
        raise ApiError(400, "bad_draw", "draw must be picture (the image with heat and boxes) or heat (the heat alone)")
    state.detection.require()
    upload = uploads.read_upload(request, IMAGE_KINDS, state.config.max_image_bytes)
    checked = _checked(upload, pixels=True)
    png, targets = state.detection.explain_png(checked["pixels"], target, draw, checked["result"])
    if not targets:
        from models.wording import wording

        raise ApiError(422, "no_face", f"{wording()['no_face']} There is no face to explain in this image.")
    resp = Response(png, mimetype="image/png")
    # One target for all faces, or each face's own (comma-separated, in the order of /check's faces).
    resp.headers["X-Unmask-Target"] = targets[0] if len(set(targets)) == 1 else ",".join(targets)
    resp.headers["X-Unmask-Faces"] = str(len(targets))
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.post("/feedback")
def feedback():
    """A user's report that a verdict was wrong: kept with the picture's SHA-256, and the
    picture itself only when it was sent (server/feedback.py)."""
    from server.feedback import FeedbackError, parse_report

    state = _state()
    if not state.feedback.enabled:
        raise ApiError(503, "feedback_off", "this server keeps no reports (UNMASK_FEEDBACK_URI=off)")
    if not request.is_json:
        raise ApiError(415, "unsupported_type", "send the report as JSON with Content-Type: application/json")
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(400, "bad_report", "the body is not valid JSON; see /api/v1/openapi.json for the report's fields")
    try:
        report = parse_report(body, state.config.max_image_bytes)
    except FeedbackError as e:
        status = {"too_large": 413, "unsupported_type": 415}.get(e.code, 400)
        raise ApiError(status, e.code, str(e)) from None
    report_id = state.feedback.store().add(report)
    return jsonify({"id": report_id, "sha256": report.sha256, "says": report.says, "picture_kept": report.picture is not None}), 201


@bp.get("/health")
def health():
    from server import ratelimit

    state = _state()
    body = state.detection.health()
    body["version"] = current_app.config["UNMASK_VERSION"]
    body["rate_limit"] = {"limit": state.config.rate_limit or None, **ratelimit.state(state.limiter)}
    body["cache"] = state.cache.state()
    code = 200 if body["status"] == "ok" else 503
    if not key_ok(state.config):
        # Public for monitors: whether it is up, and nothing about the model, the machine,
        # the traffic or why it failed (the error names files) to a client without the key.
        body = {"status": body["status"]}
    return jsonify(body), code


@bp.get("/models")
def models():
    info = _state().detection.model_info()
    return jsonify({"models": [info]})


@bp.get("/openapi.json")
def openapi():
    return Response(OPENAPI_PATH.read_bytes(), mimetype="application/json")


# --- helpers ----------------------------------------------------------------------------
def _checked(upload, pixels: bool = False) -> dict:
    """What the model and the file's provenance say of an upload: {"result", "provenance",
    "image": {width, height}, "pixels": decoded, or None}. It comes from the cache when these
    bytes were checked before by the same model, calibration and provenance rules
    (server/cache.py): no decoding, no model call, no provenance read, so a repeat costs a
    lookup. Bytes are only ever cached after they decoded, so a hit is never a bad file.
    `pixels`: decode them even on a hit (explain draws on them)."""
    import hashlib

    from models.preprocessing import contract

    state = _state()
    d = state.detection.require()
    key = None
    if state.cache.enabled:
        cal = d.calibration  # `unmask calibrate` moves the verdicts without a new version
        key = result_key(hashlib.sha256(upload.data).hexdigest(), d.name, d.version, contract()["version"],
                         f"{cal.temperature:.6g}/{cal.fake_threshold:.6g}/{cal.real_threshold:.6g}", _provenance_rules())
        hit = state.cache.get(key)
        g.cache = "miss" if hit is None else "hit"
        if hit is not None:
            return {**hit, "pixels": _decode(upload) if pixels else None}
    image = _decode(upload)
    checked = {"result": state.detection.check_image(image), "provenance": _provenance(upload, image),
               "image": {"width": int(image.shape[1]), "height": int(image.shape[0])}}
    if key is not None:
        state.cache.put(key, checked)
    return {**checked, "pixels": image}


def _provenance_rules() -> str:
    """What a cached provenance section depends on besides the bytes: the rules, the trust
    anchors and this code's version (a new release reads files anew)."""
    import hashlib
    import os

    from models import provenance

    cached = current_app.config.get("UNMASK_PROVENANCE_RULES")
    if cached is None:
        try:
            anchors = provenance.trust_anchors(os.environ.get(provenance.ANCHORS_ENV) or None)
        except ValueError as e:  # the provenance read reports it; the key only has to differ
            anchors = str(e)
        text = json.dumps(provenance.RULES, sort_keys=True) + anchors
        cached = "p" + hashlib.sha256((text + current_app.config["UNMASK_VERSION"]).encode()).hexdigest()[:12]
        current_app.config["UNMASK_PROVENANCE_RULES"] = cached
    return cached


def _decode(upload):
    from models.inference import require_size
    from models.preprocessing import ImageError, load_image

    cfg = _state().config
    try:
        image = load_image(upload.data, max_pixels=cfg.max_pixels)
        require_size(image)  # the face contract's one limit, as for every consumer
    except ImageError as e:
        raise _image_error(e, upload) from None
    return image


def _image_error(e, upload=None) -> ApiError:
    message = str(e)
    if e.reason == "not_an_image":
        return ApiError(400, "corrupt", f"The file starts like a {upload.label} but cannot be decoded: it is damaged. "
                        "Export or download it again and send the new copy.")
    if e.reason == "too_small":
        message += " Send a larger picture or video."
    return ApiError(IMAGE_ERROR_STATUS.get(e.reason, 400), e.reason, message)


def _provenance(upload, image=None) -> dict:
    from models import provenance

    try:
        return provenance.inspect(upload.data, upload.kind, pixels=image)
    except Exception as e:  # provenance is extra evidence; its failure must not lose the verdict
        log.warning("provenance check failed: %s", type(e).__name__)
        return provenance.failed(type(e).__name__)


def _common(upload, detection) -> dict:
    d = detection.require()
    return {
        "model": {"name": d.name, "version": d.version, "device": detection.device},
        "file": {"type": upload.label, "bytes": len(upload.data)},
        "time_ms": round((time.perf_counter() - g.started) * 1000, 1),
    }


def _store(upload, body: dict) -> None:
    folder = _state().config.upload_dir
    if folder:
        path = uploads.store(upload, folder)
        meta = {k: body.get(k) for k in ("verdict", "confidence", "p_fake", "basis", "model")}
        uploads.write_new(path.with_suffix(path.suffix + ".json"), json.dumps(meta).encode())
        body["stored"] = True
