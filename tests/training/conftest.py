"""Fixtures for the training tests: small synthetic data folders, and `unmask` as a function."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from tests.synthetic import manifest_folder  # noqa: E402


@pytest.fixture(scope="session")
def small_manifest(tmp_path_factory):
    """48 images of 160 px: two sources x real/fake x 12, in groups of 3 (read-only use)."""
    return manifest_folder(tmp_path_factory.mktemp("manifest"), n_per_label=12, size=160, group_size=3)


@pytest.fixture
def unmask(capsys):
    """Run `unmask ARGS...` in-process through the real CLI; returns (exit status, stdout, stderr)."""
    from training.commands import main

    def run(*argv):
        status = main([str(a) for a in argv])
        out = capsys.readouterr()
        return status, out.out, out.err

    return run
