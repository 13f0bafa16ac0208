"""models/video.py judge_video: faces tracked by box overlap, each track judged from its frames,
the video's verdict by the track rule, on the fixed cases the extension's twin also judges."""
from __future__ import annotations

import pytest

from models.calibration import Calibration
from models.video import judge_video, mean_logit, track_faces
from tests.video.cases import IMAGE_CAL, VIDEO_CAL, cases, frames_of, judged, moving

BY_NAME = {c["name"]: c for c in cases()}


def test_one_fake_face_makes_the_video_fake_and_each_face_keeps_its_own_track():
    r = judged(BY_NAME["one fake face beside a real one"])
    assert r["verdict"] == "fake" and r["calibration"] == "video"
    assert [t["verdict"] for t in r["tracks"]] == ["fake", "real"]
    assert [[face["track"] for face in f["faces"]] for f in r["frames"]] == [[0, 1]] * 8
    # The video's numbers are its most suspicious track's.
    assert r["p_fake"] == max(t["p_fake"] for t in r["tracks"])


def test_every_track_real_is_real_and_no_face_has_no_score():
    assert judged(BY_NAME["one real face"])["verdict"] == "real"
    r = judged(BY_NAME["no face"])
    assert r["verdict"] == "no_face" and r["p_fake"] is None and r["tracks"] == [] and r["frames_sampled"] == 6


def test_a_stray_one_frame_detection_is_counted_not_judged():
    r = judged(BY_NAME["a stray detection beside a long track"])
    assert [(len(t["frames"]), t["judged"]) for t in r["tracks"]] == [(10, True), (1, False)]
    assert r["tracks"][1]["verdict"] == "fake" and r["verdict"] == "real"  # the stray fake does not decide


def test_a_single_frame_with_a_face_is_still_judged():
    r = judged(BY_NAME["a face in one frame only"])
    assert r["min_track_frames"] == 1 and r["tracks"][0]["judged"] and r["verdict"] != "no_face"


def test_a_track_survives_missed_detections_and_a_jump_starts_a_new_one():
    r = judged(BY_NAME["missed detections and an uncertain face"])
    assert len(r["tracks"]) == 1 and r["tracks"][0]["frames"] == [0, 1, 4, 5, 6, 8, 9, 10, 11]
    r = judged(BY_NAME["a face that jumps across the frame starts a new track"])
    assert [t["frames"] for t in r["tracks"]] == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_track_score_is_the_mean_logit_judged_by_the_video_calibration():
    frames = frames_of(moving(3, 0, 0, 100, 2, 0, [0.9, 0.6, 0.3]), n=3)
    r = judge_video(frames, Calibration.from_dict(IMAGE_CAL), Calibration.from_dict(VIDEO_CAL))
    p = mean_logit([0.9, 0.6, 0.3])
    assert r["tracks"][0]["p_fake_raw"] == round(p, 4)
    assert r["tracks"][0]["p_fake"] == Calibration.from_dict(VIDEO_CAL).verdict(p)["p_fake"]
    # Without a video calibration, the image calibration judges the track, and says so.
    r2 = judge_video(frames, Calibration.from_dict(IMAGE_CAL))
    assert r2["calibration"] == "image" and r2["p_fake"] == Calibration.from_dict(IMAGE_CAL).verdict(p)["p_fake"]


@pytest.mark.parametrize("min_iou", [0.3, 0.9])
def test_overlap_threshold_decides_whether_moving_faces_join(min_iou):
    frames = frames_of(moving(4, 0, 0, 100, 30, 0, [0.5]), n=4)  # IoU of consecutive boxes: 70/130
    tracks = track_faces(frames, min_iou)
    assert len(tracks) == (1 if min_iou < 70 / 130 else 4)


def test_a_confidence_says_whether_videos_of_several_frames_calibrated_it():
    """faces-v1 has one frame per video: a video calibration fitted there is the image one again."""
    frames = frames_of(moving(3, 0, 0, 100, 2, 0, [0.9, 0.6, 0.3]), n=3)
    single = {**VIDEO_CAL, "fitted_on": {"frames_per_video": [1, 1.0, 1]}}
    several = {**VIDEO_CAL, "fitted_on": {"frames_per_video": [1, 3.5, 12]}}
    image = Calibration.from_dict(IMAGE_CAL)
    assert judge_video(frames, image)["calibrated_on_videos"] is False
    assert judge_video(frames, image, Calibration.from_dict(VIDEO_CAL))["calibrated_on_videos"] is False  # nothing recorded
    assert judge_video(frames, image, Calibration.from_dict(single))["calibrated_on_videos"] is False
    r = judge_video(frames, image, Calibration.from_dict(several))
    assert r["calibrated_on_videos"] is True and r["calibration"] == "video"
