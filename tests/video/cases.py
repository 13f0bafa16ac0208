"""Fixed frames of faces (boxes and raw scores, no pixels) for the video rule: the Python tests
judge them with models/video.py judge_video, and the extension's twin (videotracks.js) must
give the same answers on the same cases (tests/extension/videotracks.unit.test.mjs).

    python -m tests.video.cases     # prints every case and Python's answer as JSON
"""
from __future__ import annotations

import json

import numpy as np

IMAGE_CAL = {"temperature": 1.5, "fake_threshold": 0.8, "real_threshold": 0.2}
VIDEO_CAL = {"temperature": 1.2, "fake_threshold": 0.7, "real_threshold": 0.3}


def _face(x, y, side, p):
    return {"box": [float(x), float(y), float(x + side), float(y + side)], "p_fake_raw": float(p)}


def moving(n, x0, y0, side, dx, dy, scores):
    """One face drifting (dx, dy) px a frame, with its raw score in each frame."""
    return [_face(x0 + k * dx, y0 + k * dy, side, scores[k % len(scores)]) for k in range(n)]


def frames_of(*tracks, n, times=None, drop=()):
    """Frames whose faces are the k-th entries of each track; `drop` (frame, track) pairs hide
    a face in a frame (a missed detection)."""
    times = times or [round(0.5 * k, 3) for k in range(n)]
    return [{"time_s": times[k], "faces": [t[k] for j, t in enumerate(tracks) if (k, j) not in drop]} for k in range(n)]


def cases() -> list[dict]:
    rng = np.random.default_rng(21)
    noisy = [float(p) for p in rng.uniform(0.05, 0.95, 16)]
    out = [
        {"name": "one real face", "frames": frames_of(moving(8, 40, 40, 120, 6, 2, [0.05, 0.1, 0.08]), n=8)},
        {"name": "one fake face beside a real one",
         "frames": frames_of(moving(8, 20, 30, 100, 5, 0, [0.97, 0.9, 0.95]), moving(8, 400, 60, 110, -4, 1, [0.03, 0.06]), n=8)},
        {"name": "no face", "frames": frames_of(n=6)},
        {"name": "a face in one frame only", "frames": frames_of(moving(1, 100, 100, 90, 0, 0, [0.5]), n=1)},
        {"name": "a stray detection beside a long track",
         "frames": [{**f, "faces": f["faces"] + ([_face(600, 400, 50, 0.99)] if k == 3 else [])}
                    for k, f in enumerate(frames_of(moving(10, 50, 50, 150, 3, 3, [0.1, 0.2]), n=10))]},
        {"name": "missed detections and an uncertain face",
         "frames": frames_of(moving(12, 200, 100, 130, 8, 0, noisy), n=12, drop={(2, 0), (3, 0), (7, 0)})},
        {"name": "a face that jumps across the frame starts a new track",
         "frames": [{"time_s": k * 0.5, "faces": [_face(30 if k < 4 else 500, 40, 100, 0.4)]} for k in range(8)]},
        {"name": "two faces crossing",
         "frames": frames_of(moving(10, 0, 100, 100, 40, 0, [0.9]), moving(10, 360, 110, 100, -40, 0, [0.1]), n=10)},
        {"name": "scores at the clipping ends", "frames": frames_of(moving(5, 10, 10, 80, 1, 1, [0.0, 1.0, 1e-9]), n=5)},
    ]
    for c in out:
        c["calibration"], c["video_calibration"] = IMAGE_CAL, VIDEO_CAL
    # The image calibration judges tracks until a video calibration is fitted.
    out.append({**out[1], "name": "no video calibration yet", "video_calibration": None})
    # One fitted on videos of several frames (faces-v1's has one frame per video: [1, 1.0, 1]).
    out.append({**out[1], "name": "a video calibration fitted on videos of several frames",
                "video_calibration": {**VIDEO_CAL, "fitted_on": {"frames_per_video": [4, 8.5, 16]}}})
    return out


def judged(case: dict) -> dict:
    from models.calibration import Calibration
    from models.video import judge_video

    video_cal = Calibration.from_dict(case["video_calibration"]) if case["video_calibration"] else None
    return judge_video(case["frames"], Calibration.from_dict(case["calibration"]), video_cal)


if __name__ == "__main__":
    print(json.dumps([{"case": c, "python": judged(c)} for c in cases()]))
