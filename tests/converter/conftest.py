"""Fixtures for the converter tests: one small tiny detector, converted once per quantization."""
from __future__ import annotations

import os

import pytest

from tests.converter.helpers import node_or_skip

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def tiny_detector(tmp_path_factory):
    """The tiny architecture with seeded weights that float16 stores exactly
    (tests.synthetic.seeded_tiny): the same model on every CPU, its scores spread over
    0.04-0.99, and float16 quantization far inside the parity tolerance by construction."""
    from tests.synthetic import seeded_tiny

    return seeded_tiny(tmp_path_factory.mktemp("tiny_detector"))


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
