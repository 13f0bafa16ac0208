"""The same processing chain for every training image (`unmask train --same-chain`, issue 17):
the chain itself, and that training pushes every image of both labels through it."""
from __future__ import annotations

import argparse

import numpy as np
import pytest
import tensorflow as tf

from tests.synthetic import face_image
from training import augment as A

SIZE = 64
NOTHING_ELSE = dict(max_rotation_deg=0.0, min_crop=1.0, flip=False, p_jpeg=0.0, p_rescale=0.0, p_blur=0.0, p_noise=0.0)


def seed(i):
    return tf.constant([i, 5], tf.int64)


@pytest.mark.parametrize("label", ["real", "fake"])
def test_the_chain_keeps_shape_dtype_range_and_repeats_for_a_seed(label):
    x = tf.constant(face_image(label, SIZE, 1), tf.float32)
    outs = [A.same_chain(x, seed(i)).numpy() for i in range(4)]
    for out in outs:
        assert out.shape == (SIZE, SIZE, 3) and out.dtype == np.float32
        assert 0 <= out.min() and out.max() <= 255
        assert np.abs(out - x.numpy()).mean() > 0  # every step runs at p = 1: nothing passes through untouched
    np.testing.assert_array_equal(A.same_chain(x, seed(0)).numpy(), outs[0])
    assert len({o.tobytes() for o in outs}) == 4  # each seed its own crop, scale and quality


def test_augment_with_the_chain_is_the_chain_after_the_usual_steps():
    x = tf.constant(face_image("fake", SIZE, 2), tf.float32)
    only_chain = A.AugmentConfig(**NOTHING_ELSE, same_chain=True)
    nothing = A.AugmentConfig(**NOTHING_ELSE)
    np.testing.assert_array_equal(A.augment(x, seed(3), nothing).numpy(), x.numpy())
    chained = A.augment(x, seed(3), only_chain).numpy()
    assert np.abs(chained - x.numpy()).mean() > 0
    np.testing.assert_array_equal(chained, A.augment(x, seed(3), only_chain).numpy())
    # Without the chain the usual steps draw exactly what they drew before it existed.
    np.testing.assert_array_equal(A.augment(x, seed(4)).numpy(), A.augment(x, seed(4), A.AugmentConfig()).numpy())


def training_batches(samples, same_chain: bool):
    """The first training batches that `unmask train` builds for these samples, seed 7."""
    from training.train import pipelines

    args = argparse.Namespace(sbi="off", no_augment=False, seed=7, balance="class-weight", same_chain=same_chain)
    train, _ = pipelines({"train": samples, "val": samples[:4]}, SIZE, {"batch_size": 8}, args)
    return [(x.numpy(), y.numpy()) for x, y, _ in train.take(2)]


def test_training_pushes_every_image_of_both_labels_through_the_chain(small_manifest, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # face crops found here, not in the user's cache
    from training.data import load_dataset

    samples = load_dataset(small_manifest, progress=False).samples[::3]  # 16, both labels: faces are found in each
    plain, chained, again = (training_batches(samples, c) for c in (False, True, True))
    labels = set()
    for (xp, yp), (xc, yc), (xa, _) in zip(plain, chained, again):
        np.testing.assert_array_equal(yp, yc)  # the same images in the same order: only the chain differs
        assert xc.shape == xp.shape == (8, SIZE, SIZE, 3) and xc.dtype == np.float32
        assert 0 <= xc.min() and xc.max() <= 255
        for i in range(len(yc)):
            assert np.abs(xc[i] - xp[i]).mean() > 0, f"image {i} (label {yc[i, 0]:.0f}) missed the chain"
            labels.add(int(yc[i, 0]))
        np.testing.assert_array_equal(xa, xc)  # the same seed, the same chain
    assert labels == {0, 1}


def test_same_chain_with_no_augment_is_a_clear_error(small_manifest, tmp_path, unmask):
    status, _, err = unmask("train", "--model", "tiny", "--data", small_manifest, "--out", tmp_path / "run",
                            "--no-augment", "--same-chain")
    assert status != 0 and "--same-chain" in err and "--no-augment" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("started_with", [True, False])
def test_a_run_resumes_only_as_it_was_started(small_manifest, tmp_path, unmask, started_with):
    import json

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.keras").write_bytes(b"")
    (run / "checkpoints" / "state.json").write_text(json.dumps({"model": "tiny", "epoch": 3, "same_chain": started_with}))
    status, _, err = unmask("train", "--model", "tiny", "--data", small_manifest, "--out", run, "--resume",
                            *([] if started_with else ["--same-chain"]))
    assert status != 0 and "--same-chain" in err and ("with " if started_with else "without ") in err
