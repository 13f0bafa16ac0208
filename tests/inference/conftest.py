"""Shared, session-wide fixtures: small detectors and files made on the fly (never faces-v1)."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tests.synthetic import bad_files, decompression_bomb, face_image, write_image, write_video  # noqa: E402


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """A tiny detector fitted for a few epochs on synthetic faces, saved as training would."""
    from tests.synthetic import small_detector

    folder = tmp_path_factory.mktemp("tiny")
    small_detector(folder, "tiny", steps=2)  # batch norm settled on synthetic faces
    return folder


@pytest.fixture(scope="session")
def ensemble_dir(tmp_path_factory):
    from tests.synthetic import small_detector

    folder = tmp_path_factory.mktemp("ensemble")  # untrained: the tests need its structure only
    small_detector(folder, "ensemble", steps=0)
    return folder


@pytest.fixture(scope="session")
def tiny(tiny_dir):
    from models.detector import Detector

    return Detector.load(tiny_dir)


@pytest.fixture(scope="session")
def ensemble(ensemble_dir):
    from models.detector import Detector

    return Detector.load(ensemble_dir)


@pytest.fixture(scope="session")
def files(tmp_path_factory):
    """Good images and videos, and every kind of bad file, by name."""
    root = tmp_path_factory.mktemp("files")
    out = {
        "real": write_image(root / "real.jpg", face_image("real", 200, 1)),
        "fake": write_image(root / "fake.png", face_image("fake", 240, 2)),
        "wide": write_image(root / "wide.jpg", np.concatenate([face_image("real", 180, 3)] * 2, axis=1)),
        "video": write_video(root / "clip.mp4", "fake", seconds=1.0, fps=10, size=192, seed=0),
    }
    out.update({k: v for k, v in bad_files(root / "bad").items()})
    out["bomb"] = decompression_bomb(root / "bad" / "bomb.png")
    out["missing"] = root / "does-not-exist.jpg"
    return out


def noise_video(path, seconds: float = 1.0, fps: int = 10, size: int = 128, seed: int = 0):
    """A video of smooth colour noise: no face for the Haar cascade to find."""
    import av

    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libvpx" if str(path).endswith(".webm") else "mpeg4", rate=fps)
        s.width = s.height = size
        s.pix_fmt = "yuv420p"
        for _ in range(int(seconds * fps)):
            small = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
            frame = np.kron(small, np.ones((size // 8, size // 8, 1), np.uint8))
            for p in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path
