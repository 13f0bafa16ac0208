"""The page at /: drop or pick an image or a video and see what the server makes of it.
A Jinja template (server/templates/) with the shared vocabulary (models/wording.json)
injected as JSON, plus plain CSS and JS from server/static/, with no CDN."""
from __future__ import annotations

from flask import Blueprint, current_app, make_response, render_template, send_from_directory

bp = Blueprint("pages", __name__)


@bp.get("/")
def index():
    from models.faces import face_contract
    from models.wording import wording

    resp = make_response(render_template("index.html", wording=wording(), min_face_side=face_contract().min_face_side,
                                         found_side=face_contract().tile_found_side))
    resp.headers["Cache-Control"] = "no-cache"
    # The page loads nothing from elsewhere; say so to the browser too.
    resp.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    )
    return resp


@bp.get("/favicon.ico")
def favicon():
    # Browsers ask for it whatever the page says; the extension's icon, as an .ico.
    return send_from_directory(current_app.static_folder, "favicon.ico", mimetype="image/vnd.microsoft.icon", max_age=86400)
