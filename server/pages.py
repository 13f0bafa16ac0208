"""The page at /: drop or pick an image or a video and see what the server makes of it.
Plain HTML, CSS and JS from server/static/, with no CDN."""
from __future__ import annotations

from flask import Blueprint, current_app, send_from_directory

bp = Blueprint("pages", __name__)


@bp.get("/")
def index():
    resp = send_from_directory(current_app.static_folder, "index.html", max_age=0)
    # The page loads nothing from elsewhere; say so to the browser too.
    resp.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; object-src 'none'; base-uri 'none'"
    )
    return resp
