"""models/video.py: decoding and even sampling, every failure reason; faces in frames through FaceCheck."""
from __future__ import annotations

import io

import numpy as np
import pytest

from tests.inference.conftest import noise_video
from tests.synthetic import encode, face_image, write_video
from models.video import Frame, VideoError, looks_like_video, sample_frames

# skimage ships this photograph inside the package; its face is at about x 177, y 66,
# 95 px wide (512 x 512).
ASTRONAUT_FACE_CENTRE = (177 + 95 / 2, 66 + 95 / 2)


def astronaut_video(path, seconds=1.0, fps=10, size=256):
    """A real photograph panning slowly."""
    import av
    from PIL import Image
    from skimage import data

    photo = data.astronaut()
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=fps)
        s.width = s.height = size
        s.pix_fmt = "yuv420p"
        for i in range(int(seconds * fps)):
            # a 480 px window moving right by 2 px per frame, shrunk to `size`
            window = photo[16:496, 2 * i : 480 + 2 * i]
            frame = np.asarray(Image.fromarray(window).resize((size, size), Image.BILINEAR))
            for p in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def test_real_face_is_found_in_every_frame(tmp_path, tiny):
    from models.inference import FaceCheck

    frames = sample_frames(astronaut_video(tmp_path / "astronaut.mp4"), n_frames=5)
    assert len(frames) == 5 and all(isinstance(f, Frame) and f.image.shape == (256, 256, 3) for f in frames)
    result = FaceCheck(tiny).check_video(frames)
    assert result["video"]["frames_with_face"] == 5 and result["verdict"] in ("fake", "real", "uncertain")
    scale = 256 / 480
    for f in result["frames"]:
        assert len(f["faces"]) == 1
        x0, y0, x1, y1 = f["faces"][0]["box"]
        # The box centre lies on the face, in frame coordinates of the moving window.
        cx = (ASTRONAUT_FACE_CENTRE[0] - 2 * f["frame_index"]) * scale
        cy = (ASTRONAUT_FACE_CENTRE[1] - 16) * scale
        assert abs((x0 + x1) / 2 - cx) < (x1 - x0) / 3 and abs((y0 + y1) / 2 - cy) < (y1 - y0) / 3
    # One face panning is one track over every frame; the video's p(fake) is that track's: the
    # calibrated mean logit of its raw scores (the image calibration, as this detector has no
    # video calibration).
    from models.calibration import logit, sigmoid

    assert [t["frames"] for t in result["tracks"]] == [[0, 1, 2, 3, 4]]
    assert [face["track"] for f in result["frames"] for face in f["faces"]] == [0] * 5
    assert tiny.video_calibration is None and result["video"]["calibration"] == "image"
    mean = float(sigmoid(np.mean(logit([f["faces"][0]["p_fake_raw"] for f in result["frames"]]))))
    assert result["p_fake"] == pytest.approx(tiny.calibration.verdict(mean)["p_fake"], abs=1e-4)


def test_video_without_faces_is_no_face(tmp_path, tiny):
    from models.inference import FaceCheck

    frames = sample_frames(noise_video(tmp_path / "noise.mp4"), n_frames=4)
    assert len(frames) == 4
    result = FaceCheck(tiny).check_video(frames)
    assert result["verdict"] == "no_face" and result["p_fake"] is None and result["confidence"] is None
    assert result["video"]["frames_with_face"] == 0
    assert [f["verdict"] for f in result["frames"]] == ["no_face"] * 4


def test_frames_are_sampled_evenly_in_time_order(tmp_path):
    path = write_video(tmp_path / "v.mp4", seconds=2.0, fps=10, size=96)  # 20 frames
    frames = sample_frames(path, n_frames=4)
    assert [f.frame_index for f in frames] == [2, 7, 12, 17]  # centres of 4 equal stretches
    assert [f.time_s for f in frames] == pytest.approx([0.2, 0.7, 1.2, 1.7])
    assert frames.frame_count == 20 and frames.duration_s == pytest.approx(2.0)
    assert not frames.truncated
    # Asking for more frames than there are gives each frame once.
    every = sample_frames(path, n_frames=50)
    assert [f.frame_index for f in every] == list(range(20))


def test_seeking_gives_the_same_frames_as_reading_through(tmp_path):
    path = write_video(tmp_path / "v.mp4", seconds=2.0, fps=10, size=96)
    through = sample_frames(path, n_frames=3)
    seeking = sample_frames(path, n_frames=3, max_frames_scanned=19)  # 20 frames: too many to read through
    assert [f.frame_index for f in seeking] == [f.frame_index for f in through]
    for a, b in zip(seeking, through):
        assert np.array_equal(a.image, b.image)


@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".mov"])
def test_containers_and_bytes(tmp_path, suffix):
    path = write_video(tmp_path / f"v{suffix}", seconds=1.0, fps=10, size=96)
    from_path = sample_frames(path, n_frames=3)
    from_bytes = sample_frames(path.read_bytes(), n_frames=3)
    assert len(from_path) == len(from_bytes) == 3
    assert [f.time_s for f in from_path] == [f.time_s for f in from_bytes]


def test_failure_reasons(tmp_path):
    video = write_video(tmp_path / "v.mp4", seconds=1.0, fps=10, size=96).read_bytes()
    cases = {
        "not_a_video": [b"just some text, not a video\n" * 10, encode(face_image("real", 64, 0))],
        "empty": [b""],
        "corrupt": [video[: len(video) // 2]],  # MP4 cut before its index
    }
    for reason, blobs in cases.items():
        for blob in blobs:
            with pytest.raises(VideoError) as e:
                sample_frames(blob)
            assert e.value.reason == reason, (reason, str(e.value))
            assert str(e.value)  # a message a person can read
    assert isinstance(VideoError("x", "y"), ValueError)


def test_audio_only_file_has_no_video_stream():
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
        s = c.add_stream("aac", rate=8000)
        s.layout = "mono"
        for i in range(4):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 8000, i * 1024
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    with pytest.raises(VideoError) as e:
        sample_frames(buf.getvalue())
    assert e.value.reason == "no_video_stream"


def test_too_long(tmp_path):
    path = write_video(tmp_path / "v.mp4", seconds=2.0, fps=10, size=96)
    with pytest.raises(VideoError) as e:
        sample_frames(path, max_duration_s=1.0)
    assert e.value.reason == "too_long" and "trim" in str(e.value)
    # Seeking that would still decode more than the budget is refused too.
    with pytest.raises(VideoError) as e:
        sample_frames(path, n_frames=8, max_frames_scanned=3)
    assert e.value.reason == "too_long"


def test_cut_off_webm_keeps_its_frames_and_says_so(tmp_path):
    data = write_video(tmp_path / "v.webm", seconds=2.0, fps=10, size=96).read_bytes()
    frames = sample_frames(data[: len(data) // 2], n_frames=4)
    assert 0 < len(frames) <= 4 and frames.truncated


def test_missing_file_is_unreadable(tmp_path):
    with pytest.raises(VideoError) as e:
        sample_frames(tmp_path / "nope.mp4")
    assert e.value.reason == "unreadable" and "nope.mp4" in str(e.value)


def test_magic_bytes():
    assert looks_like_video(b"\x00\x00\x00\x1cftypisom\x00\x00\x02\x00")
    assert looks_like_video(b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81")
    assert not looks_like_video(b"\x00\x00\x00\x1cftypheic\x00\x00\x00\x00")  # a HEIC photo
    assert not looks_like_video(encode(face_image("real", 32, 0))[:16])
