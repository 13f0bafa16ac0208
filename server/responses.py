"""The JSON error every endpoint answers with: {"error": code, "message": sentence, "status"}
(the API, the app's error handlers and the rate limiter)."""
from __future__ import annotations

from flask import Response, jsonify


def error_response(status: int, code: str, message: str, headers: dict | None = None) -> Response:
    from models.wording import sentence

    resp = jsonify({"error": code, "message": sentence(message), "status": status})
    resp.status_code = status
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp
