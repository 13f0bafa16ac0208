"""The tf.data pipeline: batch shapes, the preprocessing contract, shuffling, balancing,
and a file that breaks mid-run."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from models.preprocessing import preprocess_file
from tests.synthetic import face_image, write_image
from training.data import Sample, load_dataset
from training.pipeline import class_weights, make_dataset, oversample

SIZE = 64


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipe")
    out = []
    for i in range(10):
        label = "fake" if i < 7 else "real"  # imbalanced: 7 fake, 3 real
        p = write_image(root / label / f"{i:02d}.png", face_image(label, 160 + 8 * i, i))
        out.append(Sample(str(p), int(label == "fake"), "s", f"g{i}"))
    return out


def batches(ds):
    return [tuple(np.asarray(t) if not isinstance(t, dict) else {k: np.asarray(v) for k, v in t.items()} for t in b) for b in ds]


def test_batches_have_the_contract_shapes_and_values(samples):
    out = batches(make_dataset(samples, SIZE, 4, training=False))
    assert [b[0].shape for b in out] == [(4, SIZE, SIZE, 3), (4, SIZE, SIZE, 3), (2, SIZE, SIZE, 3)]
    assert all(b[0].dtype == np.float32 and b[1].dtype == np.float32 and b[1].shape[1:] == (1,) for b in out)
    x = np.concatenate([b[0] for b in out])
    y = np.concatenate([b[1] for b in out]).ravel()
    assert y.tolist() == [s.label for s in samples]  # not training: file order
    # Exactly the preprocessing contract, as inference computes it.
    for i in (0, 9):
        np.testing.assert_allclose(x[i], preprocess_file(samples[i].path, SIZE), atol=1e-4)
    assert 0 <= x.min() and x.max() <= 255


def test_training_shuffles_each_epoch_and_repeats_for_a_seed(samples):
    def order(ds):
        return [tuple(np.asarray(b[1]).ravel()) + tuple(np.asarray(b[0])[:, 0, 0, 0]) for b in ds]

    ds = make_dataset(samples, SIZE, 10, training=True, augment=False, seed=3)
    first, second = order(ds), order(ds)
    assert first != second  # reshuffled every epoch
    assert order(make_dataset(samples, SIZE, 10, training=True, augment=False, seed=3)) == first


def test_augmentation_in_the_pipeline_repeats_for_a_seed(samples):
    a = next(iter(make_dataset(samples, SIZE, 10, training=True, seed=4)))[0].numpy()
    b = next(iter(make_dataset(samples, SIZE, 10, training=True, seed=4)))[0].numpy()
    plain = next(iter(make_dataset(samples, SIZE, 10, training=True, augment=False, seed=4)))[0].numpy()
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - plain).mean() > 1
    assert 0 <= a.min() and a.max() <= 255


def test_oversampling_balances_labels(samples):
    balanced = oversample(samples, seed=0)
    assert Counter(s.label for s in balanced) == {0: 7, 1: 7}
    assert set(balanced) == set(samples)
    ys = np.concatenate([b[1] for b in batches(make_dataset(samples, SIZE, 4, training=True, augment=False, balance="oversample"))])
    assert Counter(ys.ravel().tolist()) == {0.0: 7, 1.0: 7}


def test_class_weights_give_each_label_half_the_loss(samples):
    w = class_weights(samples)
    assert w == pytest.approx({0: 10 / 6, 1: 10 / 14})
    assert 3 * w[0] == pytest.approx(7 * w[1])
    out = batches(make_dataset(samples, SIZE, 10, training=False, class_weight=w))
    x, y, sw = out[0]
    np.testing.assert_allclose(sw, [w[int(v)] for v in y.ravel()])


def test_dict_labels_for_the_ensemble(samples):
    x, y = batches(make_dataset(samples, SIZE, 5, training=False, label_key="p_fake"))[0]
    assert set(y) == {"p_fake"} and y["p_fake"].shape == (5, 1)


def test_a_file_that_breaks_mid_run_is_weighted_out_or_dropped(tmp_path):
    root = tmp_path / "d"
    for i in range(6):
        write_image(root / ("real" if i % 2 else "fake") / f"{i}.jpg", face_image("real" if i % 2 else "fake", 160, i))
    items = load_dataset(root, progress=False).samples
    (root / "fake" / "2.jpg").write_bytes(b"overwritten after it was checked")

    x, y, w = batches(make_dataset(items, SIZE, 6, training=True, with_weights=True))[0]
    assert x.shape[0] == 6 and sorted(w.tolist()) == [0, 1, 1, 1, 1, 1]  # the batch count stays known
    dropped = batches(make_dataset(items, SIZE, 6, training=False))
    assert dropped[0][0].shape[0] == 5


def test_bad_arguments_are_refused(samples):
    with pytest.raises(ValueError, match="no samples"):
        make_dataset([], SIZE, 4, training=True)
    with pytest.raises(ValueError, match="balance must be one of"):
        make_dataset(samples, SIZE, 4, training=True, balance="smote")
