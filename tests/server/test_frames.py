"""POST /api/v1/check/frames under a real gunicorn: frames a client took from a playing video
(the extension's second opinion) are checked like pictures, tracked and judged by the one video
rule (models/video.py judge_video), and bad requests get a clear error.

The model is conftest's small untrained ensemble; the face finder is the real one.
"""
from __future__ import annotations

import json

import av
import numpy as np
import pytest

from models.calibration import Calibration
from models.video import judge_video, video_rules
from tests.server import files
from tests.server.conftest import ROOT, run_server
from tests.synthetic import encode, write_video

MAX_IMAGE = 300_000
MIN_FACE_SIDE = json.loads((ROOT / "models" / "preprocessing.json").read_text())["faces"]["min_face_side"]


@pytest.fixture(scope="module")
def server(tmp_path_factory, models_dir):
    with run_server(tmp_path_factory.mktemp("frames"), models_dir, workers=1, threads=4, max_image_bytes=MAX_IMAGE,
                    batch_wait_ms=20) as s:
        yield s


def jpeg_frames(path, every=2):
    """Every `every`-th frame of a video, as the JPEGs the extension sends, and their times."""
    out, times = [], []
    with av.open(str(path)) as c:
        for k, f in enumerate(c.decode(video=0)):
            if k % every == 0:
                out.append(encode(f.to_ndarray(format="rgb24")))
                times.append(round(float(f.time), 3))
    return out, times


def post_frames(server, frames, times=None, mime="image/jpeg"):
    data = {"times": json.dumps(times)} if times is not None else {}
    return server.post("/api/v1/check/frames", files=[("frame", (f"f{k}.jpg", b, mime)) for k, b in enumerate(frames)], data=data)


def assert_error(resp, status, code):
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"] == code and body["status"] == status and len(body["message"]) > 15, body
    return body


def test_frames_of_a_face_video_are_tracked_and_judged_by_the_video_rule(server, tmp_path):
    frames, times = jpeg_frames(write_video(tmp_path / "face.mp4", seconds=1.6, fps=10, size=256, seed=4))
    r = post_frames(server, frames, times)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["frames_sampled"] == len(frames) == 8 and body["frames_with_face"] == 8
    assert [f["time_s"] for f in body["frames"]] == times
    # One face drifting across the frame is one track over every frame.
    assert len(body["tracks"]) == 1 and body["tracks"][0]["frames"] == list(range(8))
    assert body["verdict"] == body["tracks"][0]["verdict"] and body["file"] == {"type": "frames", "frames": 8,
                                                                                  "bytes": sum(map(len, frames))}
    # The same answer as the rule applied to each frame checked alone by /check, at the
    # calibration /models reports: the endpoint adds tracking and nothing else.
    rows = []
    for b, t in zip(frames, times):
        one = server.post("/api/v1/check", files={"file": ("f.jpg", b, "image/jpeg")}).json()
        rows.append({"time_s": t, "faces": one["faces"]})
    info = server.get("/api/v1/models").json()["models"][0]
    video_cal = info["video_calibration"] and Calibration.from_dict(info["video_calibration"])
    want = judge_video(rows, Calibration.from_dict(info["calibration"]), video_cal)
    tol = video_rules()["parity_tolerance"]
    assert body["verdict"] == want["verdict"] and body["calibration"] == want["calibration"]
    assert body["calibrated_on_videos"] is want["calibrated_on_videos"] is False  # no video calibration from videos here
    assert abs(body["p_fake"] - want["p_fake"]) <= tol
    assert [len(t["frames"]) for t in body["tracks"]] == [len(t["frames"]) for t in want["tracks"]]


def test_frames_without_a_face_are_no_face(server, tmp_path):
    frames, _ = jpeg_frames(files.chart_video(tmp_path / "chart.mp4", seconds=0.6))
    body = post_frames(server, frames).json()
    assert body["verdict"] == "no_face" and body["p_fake"] is None and body["tracks"] == []
    assert [f["time_s"] for f in body["frames"]] == [None] * len(frames)


def test_bad_requests_get_a_clear_error(server, tmp_path):
    good, _ = jpeg_frames(write_video(tmp_path / "v.mp4", seconds=0.4, fps=10), every=1)
    assert_error(server.post("/api/v1/check/frames", data=good[0], headers={"Content-Type": "image/jpeg"}), 400, "no_file")
    assert_error(server.post("/api/v1/check/frames", files={"file": ("a.jpg", good[0], "image/jpeg")}), 400, "no_file")
    too_many = video_rules()["sampling"]["max_frames"] + 1
    assert_error(post_frames(server, [good[0]] * too_many), 413, "too_many_frames")
    video = (tmp_path / "v.mp4").read_bytes()
    assert "not the video" in assert_error(post_frames(server, [video], mime="video/mp4"), 415, "unsupported_type")["message"]
    assert_error(post_frames(server, [good[0], good[1][: len(good[1]) // 2]]), 400, "truncated")
    assert_error(post_frames(server, good, [0.0]), 400, "bad_times")
    assert_error(post_frames(server, good, "soon"), 400, "bad_times")
    small = encode(np.full((MIN_FACE_SIDE - 8, 200, 3), 90, np.uint8))
    assert f"{MIN_FACE_SIDE} px" in assert_error(post_frames(server, [small]), 400, "too_small")["message"]
    assert_error(post_frames(server, [b""]), 400, "empty")
