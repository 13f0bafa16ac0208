"""Shared, session-wide fixtures: small detectors and files made on the fly (never faces-v1)."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tests.synthetic import bad_files, decompression_bomb, face_image, write_image, write_video  # noqa: E402


def settle_batchnorm(detector):
    """A few fitting steps leave batch norm's moving statistics far from the data's, so the
    model scores every image alike at inference. Set them to the statistics of the training
    images (momentum 0 for one pass), as a longer training would, and save again."""
    import keras

    def bn_layers(model):
        for layer in model.layers:
            if isinstance(layer, keras.Model):
                yield from bn_layers(layer)
            elif isinstance(layer, keras.layers.BatchNormalization):
                yield layer

    size = detector.spec.input_size
    x = np.stack([face_image(lbl, size, i) for i in range(16) for lbl in ("real", "fake")]).astype("float32")
    layers = list(bn_layers(detector.model))
    for layer in layers:
        layer.momentum = 0.0
    detector.model(x, training=True)
    for layer in layers:
        layer.momentum = 0.99
    detector.save(detector.path)
    return detector


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """A tiny detector fitted for a few epochs on synthetic faces, saved as training would."""
    from tests.synthetic import small_detector

    folder = tmp_path_factory.mktemp("tiny")
    settle_batchnorm(small_detector(folder, "tiny", steps=2))
    return folder


@pytest.fixture(scope="session")
def ensemble_dir(tmp_path_factory):
    from tests.synthetic import small_detector

    folder = tmp_path_factory.mktemp("ensemble")  # untrained: the tests need its structure only
    settle_batchnorm(small_detector(folder, "ensemble", steps=0))
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
