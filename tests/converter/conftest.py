"""Fixtures for the converter tests: one small tiny detector, converted once per quantization."""
from __future__ import annotations

import os

import pytest

from tests.converter.helpers import node_or_skip

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _batchnorms(layer):
    import keras

    for inner in getattr(layer, "layers", []):
        yield from _batchnorms(inner)
    if isinstance(layer, keras.layers.BatchNormalization):
        yield layer


@pytest.fixture(scope="session")
def tiny_detector(tmp_path_factory):
    """small_detector("tiny", steps=2), made sensitive to its input. Untrained, its 13
    MobileNet blocks shrink activations to ~1e-17 and every image scores the same, so parity
    would hold trivially. Setting each batch norm's statistics from one batch of synthetic
    faces (a data-dependent initialisation) keeps activations alive: scores then spread
    over roughly 0.1-0.9, and a preprocessing mismatch would show."""
    import numpy as np

    from tests.synthetic import face_image, small_detector

    folder = tmp_path_factory.mktemp("tiny_detector")
    det = small_detector(folder, "tiny", steps=2)
    size = det.spec.input_size
    x = np.stack([face_image(label, size, 100 + i) for i in range(16) for label in ("real", "fake")]).astype("float32")
    layers = list(_batchnorms(det.model))
    for bn in layers:
        bn.momentum = 0.0  # the next training-mode call sets the moving statistics to this batch's
    det.model(x, training=True)
    for bn in layers:
        bn.momentum = 0.99
    det.save(folder)
    return det


@pytest.fixture(scope="session")
def converted(tiny_detector, tmp_path_factory):
    """quantization -> (output folder, metadata returned by convert, printed lines). Only
    "mixed" (what the extension ships) also converts the face model: it takes ~30 s."""
    node_or_skip()
    from converter.export import QUANTIZATIONS, convert

    out = {}
    for q in QUANTIZATIONS:
        folder = tmp_path_factory.mktemp(f"tfjs_{q}")
        lines: list[str] = []
        meta = convert(tiny_detector.path, folder, quantize=q, faces=q == "mixed", log=lines.append)
        out[q] = (folder, meta, lines)
    return out
