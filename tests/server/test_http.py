"""The server through HTTP: a real gunicorn (two workers, four threads each) started with
`unmask serve`, every endpoint, faces (none, one, several; in videos too), a corpus of bad
files, concurrent clients, the page in Chromium, and a worker killed mid-run (last, since it
disturbs the server).

The model is the ensemble architecture, small and untrained, with a hand-set calibration
that calls every face `real` (conftest.models_dir). The face finder is the real one; it finds
the cartoon faces of tests.synthetic at 200 px.
"""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from tests.server import files
from tests.server.c2pa_signing import TRAINED, sign
from tests.server.conftest import ROOT, run_server, worker_pids
from tests.server.test_attacks import EXTENSION
from tests.synthetic import bad_files, decompression_bomb, encode, face_image, write_video

MAX_IMAGE = 300_000
MAX_VIDEO = 3_000_000
MARKER = "SECRET-CONTENT-7f3a9"  # placed in uploads; must never appear in the log
MIN_FACE_SIDE = json.loads((ROOT / "models" / "preprocessing.json").read_text())["faces"]["min_face_side"]
NO_FACE = json.loads((ROOT / "models" / "wording.json").read_text())["no_face"]


@pytest.fixture(scope="module")
def server(tmp_path_factory, models_dir):
    root = tmp_path_factory.mktemp("http")
    video_tmp = root / "video-tmp"
    video_tmp.mkdir()
    with run_server(root, models_dir, workers=2, threads=4, max_image_bytes=MAX_IMAGE, max_video_bytes=MAX_VIDEO,
                    tmp_dir=video_tmp, batch_wait_ms=50, video_frames=6) as s:
        s.video_tmp = video_tmp
        yield s


def jpeg(seed=0, size=200, label="real") -> bytes:
    return encode(face_image(label, size, seed))


def check(server, data: bytes, name="face.jpg", mime="image/jpeg", path="/api/v1/check", **kw):
    return server.post(path, files={"file": (name, data, mime)}, **kw)


def assert_error(resp, status, code=None):
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith("application/json")
    body = resp.json()
    assert body["status"] == status and len(body["message"]) > 15
    if code:
        assert body["error"] == code, body
    return body


# --- health, models, OpenAPI ------------------------------------------------------------
def test_health_reports_model_device_and_batching(server):
    r = server.get("/api/v1/health")
    assert r.status_code == 200
    h = r.json()
    assert h["status"] == "ok" and h["model"] == {"name": "ensemble", "version": "test"}
    assert h["device"] == "CPU" or h["device"].startswith("GPU:")
    assert h["batching"]["enabled"] and h["batching"]["max_batch"] == 16


def test_models_lists_the_ensemble_and_its_members(server):
    m = server.get("/api/v1/models").json()["models"][0]
    assert m["name"] == "ensemble" and m["architecture"] == "ensemble"
    from models.preprocessing import input_spec

    assert m["members"] == ["tuned-cnn", "pretrained"] and m["input_size"] == input_spec("ensemble").input_size
    assert m["calibration"]["fake_threshold"] == 0.99


def test_openapi_is_served_and_names_every_endpoint(server):
    doc = server.get("/api/v1/openapi.json").json()
    assert doc == json.loads((ROOT / "server" / "openapi.json").read_text())
    assert set(doc["paths"]) == {"/api/v1/check", "/api/v1/check/video", "/api/v1/check/frames", "/api/v1/explain",
                                 "/api/v1/health", "/api/v1/models", "/api/v1/openapi.json", "/api/v1/feedback"}


def test_no_cross_origin_access_unless_configured(server):
    r = server.get("/api/v1/models", headers={"Origin": "chrome-extension://abcdefghijklmnopabcdefghijklmnop"})
    assert r.status_code == 403 and r.json()["error"] == "origin_refused" and "Access-Control-Allow-Origin" not in r.headers


def test_our_own_extension_is_allowed_without_configuration(server):
    # The ID that `npm run build` prints for the unpacked extension of this checkout (this
    # server has no UNMASK_CORS_ORIGINS): `make run` and the extension work together as installed.
    r = server.get("/api/v1/models", headers={"Origin": EXTENSION})
    assert r.status_code == 200 and r.headers.get("Access-Control-Allow-Origin") == EXTENSION


def test_unknown_paths_and_methods_answer_json(server):
    assert_error(server.get("/api/v1/nothing"), 404, "not_found")
    assert_error(server.get("/api/v1/check"), 405)


# --- /check -----------------------------------------------------------------------------
@pytest.mark.parametrize("fmt,mime", [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp"),
                                      ("GIF", "image/gif"), ("BMP", "image/bmp")])
def test_check_every_image_format(server, fmt, mime):
    data = encode(face_image("real", 180, 7), fmt)
    r = check(server, data, f"face.{fmt.lower()}", mime)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["verdict"] == "real" and body["basis"] == "model"
    assert 0.5 <= body["confidence"] <= 1 and 0 <= body["p_fake"] <= 1
    [face] = body["faces"]
    assert face["verdict"] == "real" and face["p_fake"] == body["p_fake"] and face["summary"] == body["summary"]
    assert 0 <= face["box"][0] < face["box"][2] <= 180 and 0 <= face["box"][1] < face["box"][3] <= 180
    assert set(body["members"]) == {"tuned-cnn", "pretrained"} and body["members"] == face["members"]
    assert body["model"]["version"] == "test" and body["time_ms"] > 0
    assert body["file"] == {"type": {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP", "GIF": "GIF", "BMP": "BMP"}[fmt], "bytes": len(data)}
    assert body["image"] == {"width": 180, "height": 180}
    assert body["provenance"]["generator_evidence"] is False
    assert "stored" not in body


def test_check_takes_the_raw_body_too(server):
    a = server.post("/api/v1/check", data=jpeg(3), headers={"Content-Type": "image/jpeg"}).json()
    b = check(server, jpeg(3)).json()
    assert a["p_fake_raw"] == b["p_fake_raw"] and a["members"] == b["members"]
    untyped = server.post("/api/v1/check", data=jpeg(3), headers={"Content-Type": "application/octet-stream"})
    assert untyped.status_code == 200


def test_animated_gif_uses_its_first_frame(server):
    first = check(server, encode(face_image("real", 200, 0), "GIF"), "a.gif", "image/gif").json()
    anim = check(server, files.animated_gif(0), "a.gif", "image/gif").json()
    assert anim["image"] == {"width": 200, "height": 200}
    assert anim["p_fake_raw"] == pytest.approx(first["p_fake_raw"], abs=0.01)


# --- bad input --------------------------------------------------------------------------
def test_bad_files_are_refused_with_a_reason(server, tmp_path):
    bad = bad_files(tmp_path)
    # Under the face contract's limit (48 px), which tests.synthetic's 64 px image is not.
    bad["too_small"] = tmp_path / "tiny.png"
    bad["too_small"].write_bytes(encode(face_image("real", MIN_FACE_SIDE - 8, 5), "PNG"))
    expected = {"corrupt": (400, "corrupt"), "truncated": (400, "truncated"), "not_an_image": (415, "unsupported_type"),
                "empty": (400, "empty"), "too_small": (400, "too_small")}
    for kind, path in bad.items():
        status, code = expected[kind]
        assert_error(check(server, path.read_bytes(), path.name, "application/octet-stream"), status, code)
        assert_error(server.post("/api/v1/check", data=path.read_bytes()), status, code)


def test_decompression_bomb_is_refused_before_decoding(server, tmp_path):
    bomb = decompression_bomb(tmp_path / "bomb.png").read_bytes()
    assert len(bomb) < MAX_IMAGE  # small on the wire, 400 million pixels decoded
    body = assert_error(check(server, bomb, "bomb.png", "image/png"), 413, "too_many_pixels")
    assert "decompression bomb" in body["message"]
    assert server.get("/api/v1/health").status_code == 200


def test_a_file_that_lies_about_its_type_is_refused(server):
    png = encode(face_image("real", 200, 1), "PNG")
    body = assert_error(check(server, png, "face.jpg", "application/octet-stream"), 415, "type_mismatch")
    assert "*.jpg" in body["message"] and "PNG" in body["message"]
    assert_error(check(server, png, "face.png", "image/jpeg"), 415, "type_mismatch")
    assert_error(server.post("/api/v1/check", data=png, headers={"Content-Type": "image/jpeg"}), 415, "type_mismatch")


def test_unknown_types_and_wrong_endpoints(server, tmp_path):
    assert_error(server.post("/api/v1/check", data=b"%PDF-1.7\n" + bytes(300), headers={"Content-Type": "application/pdf"}),
                 415, "unsupported_type")
    video = write_video(tmp_path / "v.mp4", seconds=0.5).read_bytes()
    assert "/api/v1/check/video" in assert_error(check(server, video, "v.mp4", "video/mp4"), 415, "wrong_endpoint")["message"]
    assert_error(check(server, jpeg(), path="/api/v1/check/video"), 415, "wrong_endpoint")
    assert_error(server.post("/api/v1/check", files={"other": ("notes.txt", b"hello")}), 400, "no_file")
    assert_error(server.post("/api/v1/check", data={"other": "field"}), 400, "no_file")


def test_oversized_uploads_get_413(server):
    big = os.urandom(MAX_IMAGE + 200_000)
    for resp in (check(server, big), server.post("/api/v1/check", data=big, headers={"Content-Type": "image/jpeg"})):
        body = assert_error(resp, 413)
        assert "limit" in body["message"]
    # A file just over the limit inside a form that fits the body allowance: refused all the same.
    assert_error(check(server, b"\xff\xd8\xff" + bytes(MAX_IMAGE)), 413, "too_large")
    assert server.get("/api/v1/health").status_code == 200


def test_urls_are_never_fetched(server, listener):
    url = listener.url + "/image.jpg"
    assert_error(server.post("/api/v1/check", data=url, headers={"Content-Type": "text/plain"}), 415, "url_not_fetched")
    assert_error(server.post("/api/v1/check", json={"url": url}), 415, "url_not_fetched")
    # A file whose Content Credentials live at a URL: reported, not fetched.
    remote = sign(jpeg(5), "image/jpeg", TRAINED, remote_url=listener.url + "/manifest.c2pa")
    c2pa = check(server, remote).json()["provenance"]["c2pa"]
    assert c2pa["remote"] and c2pa["remote_url"].startswith(listener.url)
    time.sleep(0.5)
    assert listener.hits == []


# --- provenance through the API ---------------------------------------------------------
def test_provenance_pushes_a_real_verdict_to_fake(server):
    cases = {
        "c2pa": (sign(jpeg(11), "image/jpeg", TRAINED), "face.jpg", "image/jpeg"),
        "png": (files.png_with_text({"parameters": "portrait photo, Steps: 25, Sampler: Euler a"}), "face.png", "image/png"),
        "exif": (files.jpeg_with_exif("Midjourney v6"), "face.jpg", "image/jpeg"),
        "xmp": (files.jpeg_with_xmp("trainedAlgorithmicMedia"), "face.jpg", "image/jpeg"),
    }
    for source, (data, name, mime) in cases.items():
        body = check(server, data, name, mime).json()
        assert body["model_verdict"]["verdict"] == "real", source
        assert body["verdict"] == "fake" and body["basis"] == "provenance" and body["confidence"] is None, source
        assert any(f["source"] == source and f["evidence"] for f in body["provenance"]["findings"]), source
    c2pa = check(server, cases["c2pa"][0]).json()["provenance"]["c2pa"]
    assert c2pa["validation_state"] == "Valid" and c2pa["ai_generated"]


def test_ordinary_metadata_leaves_the_verdict_alone(server):
    body = check(server, files.jpeg_with_exif("GIMP 2.10")).json()
    assert body["verdict"] == "real" and body["basis"] == "model"
    assert body["provenance"]["metadata"]["software"] == "GIMP 2.10"


# --- /check/video -----------------------------------------------------------------------
@pytest.mark.parametrize("suffix,mime", [(".mp4", "video/mp4"), (".webm", "video/webm"), (".mov", "video/quicktime")])
def test_check_video_formats(server, tmp_path, suffix, mime):
    data = write_video(tmp_path / f"clip{suffix}", seconds=1.0, fps=10, seed=2).read_bytes()
    r = check(server, data, f"clip{suffix}", mime, path="/api/v1/check/video")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["verdict"] in ("real", "fake", "uncertain") and body["basis"] == "model"
    assert body["frames_sampled"] == len(body["frames"]) == 6
    times = [f["time_s"] for f in body["frames"]]
    assert times == sorted(times) and times[-1] < 1.0
    # The drifting cartoon face is found in (nearly) every frame; each frame follows the picture rule.
    with_face = [f for f in body["frames"] if f["faces"]]
    assert len(with_face) == body["frames_with_face"] >= 4
    for f in body["frames"]:
        if f["faces"]:
            assert f["p_fake"] == max(x["p_fake"] for x in f["faces"])
            assert all(set(x["members"]) == {"tuned-cnn", "pretrained"} for x in f["faces"])
        else:
            assert f["verdict"] == "no_face" and f["p_fake"] is None
    assert sum(seg["frames"] for seg in body["timeline"]) == 6
    assert body["video"]["frame_count"] == 10
    assert list(server.tmp.iterdir()) == [] and list(server.video_tmp.iterdir()) == []


def test_video_without_a_face_is_no_face(server, tmp_path):
    data = files.chart_video(tmp_path / "chart.mp4").read_bytes()
    body = check(server, data, "chart.mp4", "video/mp4", path="/api/v1/check/video").json()
    assert body["verdict"] == "no_face" and body["p_fake"] is None and body["confidence"] is None
    assert body["frames_with_face"] == 0 and body["summary"] == NO_FACE
    assert all(f["verdict"] == "no_face" and f["faces"] == [] for f in body["frames"])
    assert body["timeline"] == [{"start_s": 0.0, "end_s": body["frames"][-1]["time_s"], "verdict": "no_face",
                                 "frames": 6, "max_p_fake": None}]


def test_bad_videos_are_refused_and_leave_no_files(server, tmp_path):
    good = write_video(tmp_path / "clip.mp4", seconds=1.0).read_bytes()
    broken = good[:32] + bytes(2000)  # an MP4 header, then nothing usable
    assert_error(check(server, broken, "clip.mp4", "video/mp4", path="/api/v1/check/video"), 400)
    assert_error(check(server, b"", "clip.mp4", "video/mp4", path="/api/v1/check/video"), 400, "empty")
    tiny = write_video(tmp_path / "tiny.mp4", seconds=0.5, size=MIN_FACE_SIDE - 8).read_bytes()  # frames under the limit
    assert f"{MIN_FACE_SIDE} px" in assert_error(check(server, tiny, "tiny.mp4", "video/mp4", path="/api/v1/check/video"),
                                                 400, "too_small")["message"]
    assert_error(check(server, os.urandom(MAX_VIDEO + 100_000), "clip.mp4", "video/mp4", path="/api/v1/check/video"), 413)
    assert list(server.video_tmp.iterdir()) == []


# --- faces -----------------------------------------------------------------------------
def test_a_chart_has_no_face_and_no_score(server):
    body = check(server, encode(files.chart(), "PNG"), "chart.png", "image/png").json()
    assert body["verdict"] == "no_face" and body["basis"] == "none"
    assert body["confidence"] is None and body["p_fake"] is None and body["p_fake_raw"] is None
    assert body["faces"] == [] and body["members"] == {}
    assert body["image"] == {"width": 640, "height": 480}
    # Larger than a tile: the search looked tile by tile, and says what it may still miss.
    assert "turned away" in body["hint"] and body["summary"] == f"{NO_FACE} {body['hint']}"


def test_generator_provenance_gives_a_picture_without_a_face_its_verdict(server):
    png = encode(files.chart(), "PNG", pnginfo=_png_info({"parameters": "a chart, Steps: 20, Sampler: Euler a"}))
    body = check(server, png, "chart.png", "image/png").json()
    assert body["verdict"] == "fake" and body["basis"] == "provenance" and body["confidence"] is None
    assert body["model_verdict"]["verdict"] == "no_face" and body["faces"] == []
    assert body["provenance"]["tier"] == "declared"


def _png_info(chunks):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for k, v in chunks.items():
        info.add_text(k, v)
    return info


def test_one_face_in_a_photo(server):
    [photo] = files.faces_v1(files.FFHQ[:1])
    body = check(server, encode(photo)).json()
    [face] = body["faces"]
    x0, y0, x1, y1 = face["box"]
    assert 0 <= x0 < x1 <= 256 and 0 <= y0 < y1 <= 256 and x1 - x0 >= MIN_FACE_SIDE
    assert face["detector_score"] >= 0.5 and len(face["crop"]) == 3 and len(face["keypoints"]) == 6
    assert body["verdict"] == face["verdict"] == "real" and body["p_fake"] == face["p_fake"]
    assert body["summary"] == face["summary"] and body["summary"].startswith("Likely real")


def test_several_faces_in_one_scene(server):
    picture, places = files.scene(files.faces_v1())
    body = check(server, encode(picture)).json()
    assert body["image"] == {"width": 1200, "height": 800}
    faces = sorted(body["faces"], key=lambda f: f["box"][0])
    assert len(faces) == 3 and body["faces_too_small"] == 0 and body["faces_over_limit"] == 0
    for face, (px0, py0, px1, py1) in zip(faces, places):  # each box lies on the photo pasted there
        x0, y0, x1, y1 = face["box"]
        assert px0 - 4 <= x0 < x1 <= px1 + 4 and py0 - 4 <= y0 < y1 <= py1 + 4
    # The picture rule: its p(fake) is the highest face p(fake); every face real -> real.
    top = max(faces, key=lambda f: f["p_fake"])
    assert body["p_fake"] == top["p_fake"] and body["confidence"] == top["confidence"]
    assert all(f["verdict"] == "real" for f in faces) and body["verdict"] == "real"


def test_an_image_under_the_face_limit_is_refused_with_what_to_do(server):
    small = encode(face_image("real", 200, 1)[: MIN_FACE_SIDE - 1])  # 200 x 47
    for path in ("/api/v1/check", "/api/v1/explain"):
        body = assert_error(check(server, small, path=path), 400, "too_small")
        assert f"{MIN_FACE_SIDE} px" in body["message"] and "larger" in body["message"]
    assert check(server, encode(face_image("real", 200, 1)[:MIN_FACE_SIDE])).status_code == 200  # at the limit


def test_favicon_is_served(server):
    r = server.get("/favicon.ico")
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/vnd.microsoft.icon"
    assert Image.open(io.BytesIO(r.content)).format == "ICO"


def test_explain_draws_each_face_of_a_scene(server):
    picture, _ = files.scene(files.faces_v1())
    r = check(server, encode(picture), path="/api/v1/explain")
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/png"
    assert r.headers["X-Unmask-Faces"] == "3" and r.headers["X-Unmask-Target"] == "real"
    png = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB")).astype(int)
    assert png.shape == (683, 1024, 3)  # the whole picture, shrunk to 1024 px
    sent = Image.open(io.BytesIO(encode(picture))).convert("RGB").resize((1024, 683), Image.BILINEAR)
    diff = np.abs(png - np.asarray(sent).astype(int)).max(axis=2)
    assert diff[:200].max() <= 1  # far from the faces the picture is untouched
    for x0, x1 in ((60, 280), (400, 620), (745, 965)):  # each face's box (and heat) drawn on it
        assert diff[240:440, x0:x1].max() > 60
    body = assert_error(check(server, encode(files.chart()), path="/api/v1/explain"), 422, "no_face")
    assert NO_FACE in body["message"]


# --- /explain ---------------------------------------------------------------------------
def test_explain_returns_a_heatmap_over_the_image(server):
    r = check(server, encode(face_image("real", 300, 4)), path="/api/v1/explain")
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/png"
    assert r.headers["X-Unmask-Target"] == "real"  # the verdict of this model on the face
    assert r.headers["X-Unmask-Faces"] == "1"
    img = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))
    assert img.shape == (300, 300, 3)
    fake = check(server, jpeg(4), path="/api/v1/explain?target=fake")
    assert fake.status_code == 200 and fake.headers["X-Unmask-Target"] == "fake"
    big = check(server, encode(face_image("real", 1500, 4)), path="/api/v1/explain")
    assert Image.open(io.BytesIO(big.content)).size == (1024, 1024)
    assert_error(check(server, jpeg(4), path="/api/v1/explain?target=maybe"), 400, "bad_target")
    assert_error(check(server, b"not an image at all", "x.jpg", path="/api/v1/explain"), 415)


# --- load -------------------------------------------------------------------------------
def test_concurrent_clients_are_all_answered_with_their_own_result(server):
    sizes = [150 + 7 * i for i in range(24)]

    def one(i):
        r = check(server, encode(face_image("real" if i % 2 else "fake", sizes[i], i)), f"f{i}.jpg")
        return i, r.status_code, (r.json().get("image") if r.ok else r.text)

    with ThreadPoolExecutor(24) as pool:
        results = list(pool.map(one, range(24)))
    assert [(i, 200, {"width": sizes[i], "height": sizes[i]}) for i in range(24)] == results
    # The micro-batcher put concurrent requests into shared model calls in some worker.
    stats = []
    for _ in range(20):
        stats.append(server.get("/api/v1/health", headers={"Connection": "close"}).json()["batching"])
    assert max(s["largest_batch"] for s in stats) >= 2
    assert all(s["model_calls"] <= s["inputs"] for s in stats)


# --- what is kept and what is logged -----------------------------------------------------
def test_nothing_is_stored_and_no_content_is_logged(server):
    marked_png = files.png_with_text({"Comment": MARKER})
    assert check(server, marked_png, f"{MARKER}.png", "image/png").status_code == 200
    assert check(server, MARKER.encode() * 40, f"{MARKER}.jpg").status_code == 415
    time.sleep(0.5)
    log = server.log()
    assert "POST /api/v1/check 200" in log  # the log does record requests
    assert MARKER not in log
    assert list(server.workdir.iterdir()) == []
    assert list(server.tmp.iterdir()) == []


# --- the page, in Chromium --------------------------------------------------------------
@pytest.mark.browser
def test_page_in_chromium_shows_faces_verdict_heatmap_models_and_provenance(server, tmp_path):
    words = json.loads((ROOT / "models" / "wording.json").read_text())
    image = tmp_path / "face.png"
    image.write_bytes(files.png_with_text({"parameters": "a face, Steps: 20, Sampler: Euler"}))
    corrupt = bad_files(tmp_path / "bad")["corrupt"]
    video = write_video(tmp_path / "clip.webm", seconds=1.0, seed=3)
    chart = tmp_path / "chart.png"
    chart.write_bytes(encode(files.chart(), "PNG"))
    out = subprocess.run(["node", str(Path(__file__).with_name("page_check.mjs")), server.url("/"), str(image),
                          str(corrupt), str(video), str(chart)], capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert out.returncode == 0, out.stderr + out.stdout
    res = json.loads(out.stdout.strip().splitlines()[-1])
    img = res["image"]
    assert img["verdict"] == "fake" and "provenance" in img["basis"]  # pushed by the PNG chunk
    assert img["shown"] == words["labels"]["fake"]
    # One face: its box over the picture, in its own verdict (the models said real).
    assert img["boxes"] == 1 and img["boxesFit"] and img["boxLabels"][0].startswith(f"1 {words['short']['real']}")
    assert len(img["faceRows"]) == 1 and img["faceRows"][0].startswith(words["labels"]["real"])
    assert img["legendShown"] and "what looked real" in img["legend"]
    assert img["rule"] == words["image_rule"] and img["whatIsChecked"] == words["what_is_checked"]
    assert img["members"] == ["tuned-cnn", "pretrained"]
    assert img["heatmapWidth"] > 0 and img["previewWidth"] > 0
    assert any("PNG" in f for f in img["findings"])
    assert img["provenance"] == words["provenance"]["declared"] and img["provenanceTier"] == "declared"
    assert img["provenanceDetails"] == {"Tier": "declared"}
    assert res["requests_to_other_hosts"] == [] and res["console_errors"] == []
    assert "damaged" in res["corrupt"]["error"] or "corrupt" in res["corrupt"]["error"]
    assert res["video"]["verdict"] in ("real", "fake", "uncertain") and res["video"]["frames"] == 6
    assert res["video"]["timelineSegments"] >= 1
    # The test ensemble has no video calibration: the video's confidence says it is a picture's.
    assert res["video"]["note"].endswith(" " + words["video"]["calibration_single_frame"])
    no_face = res["noFace"]
    assert no_face["shown"] == words["labels"]["no_face"] and "turned away" in no_face["summary"]
    assert no_face["boxes"] == 0 and no_face["facesHidden"] and no_face["heatmapHidden"]


# --- a worker killed mid-run (last: it disturbs the server) ------------------------------
def test_service_recovers_when_a_worker_is_killed(server, tmp_path):
    pids = worker_pids(server)
    assert len(pids) == 2, pids
    victim = sorted(pids)[0]
    # A temporary file as the victim would leave it when killed mid-video.
    orphan = server.video_tmp / f"unmask-{victim}-{'c' * 32}.mp4"
    orphan.write_bytes(b"half a video")
    stop = threading.Event()
    outcomes = []

    def load():
        while not stop.is_set():
            try:
                outcomes.append(check(server, jpeg(len(outcomes) % 5), timeout=60).status_code)
            except requests.RequestException as e:
                outcomes.append(type(e).__name__)

    clients = [threading.Thread(target=load) for _ in range(4)]
    for t in clients:
        t.start()
    time.sleep(1.0)
    os.kill(victim, signal.SIGKILL)
    time.sleep(1.0)
    stop.set()
    for t in clients:
        t.join(120)
    # The arbiter starts a new worker, which loads the model; the service answers again.
    deadline = time.monotonic() + 120
    fresh: set[int] = set()
    while time.monotonic() < deadline and not (fresh and all(f"[{p}] [INFO] loaded" in server.log() for p in fresh)):
        fresh = worker_pids(server) - pids
        time.sleep(0.5)
    assert fresh and all(f"[{p}] [INFO] loaded" in server.log() for p in fresh), "no replacement worker loaded the model"
    assert victim not in worker_pids(server)
    after = [check(server, jpeg(i)).status_code for i in range(10)]
    assert after == [200] * 10
    assert outcomes.count(200) > 0
    assert not orphan.exists()  # swept when the worker died
