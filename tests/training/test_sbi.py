"""Self-blended images (training/sbi.py): landmarks from the real face mesh on real faces, the
blend itself, the paired batches, and `unmask train --sbi` through the CLI."""
from __future__ import annotations

import numpy as np
import pytest

from tests.synthetic import face_image, write_image


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory):
    """A face photo on disk, its face crop resized to 224 px, and its landmarks (real models)."""
    from PIL import Image

    from models.preprocessing import load_image
    from training.facecrops import apply_crop, face_crops
    from training.sbi import face_landmarks

    path = write_image(tmp_path_factory.mktemp("sbi") / "astronaut.png", face_image("real", 256, seed=4))
    crop = face_crops([str(path)], progress=False)[0]
    points = face_landmarks([str(path)], [crop], progress=False)[0]
    face = np.asarray(Image.fromarray(apply_crop(load_image(str(path)), crop)).resize((224, 224), Image.BILINEAR), np.float32)
    return path, crop, points, face


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_landmarks_lie_on_the_face_and_are_cached(astronaut, private_cache, monkeypatch):
    from training import sbi

    path, crop, points, _ = astronaut
    assert points is not None and points.shape == (468, 2)
    # The crop is about 1.6x the face box around the face: the mesh lies in its middle.
    assert 0.3 < points[:, 0].mean() < 0.7 and 0.3 < points[:, 1].mean() < 0.75
    assert 0.25 < np.ptp(points[:, 0]) < 0.9
    first = sbi.face_landmarks([str(path)], [crop], progress=False)[0]
    assert sbi.cache_file().is_file()

    def no_mesh(*a, **k):
        raise AssertionError("the mesh ran again: the cache was not used")

    monkeypatch.setattr("models.blazeface.build_face_mesh", no_mesh)
    again = sbi.face_landmarks([str(path)], [crop], progress=False)[0]
    np.testing.assert_allclose(again, first, atol=1e-3)  # float16 on disk


def test_a_picture_without_a_face_gets_no_landmarks(tmp_path, private_cache):
    from tests.synthetic import chart
    from training.sbi import face_landmarks

    path = write_image(tmp_path / "chart.png", chart((256, 256)))
    assert face_landmarks([str(path)], [None], progress=False) == [None]
    assert face_landmarks([str(tmp_path / "gone.jpg")], [None], progress=False) == [None]


def test_the_blend_pastes_one_copy_into_the_other_through_a_soft_mask_on_the_face(astronaut, monkeypatch):
    from training import sbi

    _, _, points, face = astronaut
    face = np.minimum(face, 200)  # room for the +30 copy below, so nothing clips
    monkeypatch.setattr(sbi, "changed_copy", lambda image, rng: image + 30.0)  # a copy whose change is known
    regions = set()
    for seed in range(30):
        blended, mask, region = sbi.self_blend(face, points, np.random.default_rng(seed))
        regions.add(region)
        assert blended.shape == face.shape and blended.dtype == np.float32 and 0 < mask.max() <= 1
        change = (blended - face).mean(axis=-1) / 30.0  # the share of the changed copy in each pixel
        pasted, kept = np.abs(change - mask).max(), np.abs(change - (1 - mask)).max()
        assert min(pasted, kept) < 1e-3, region  # the changed copy pasted in, or the rest changed
        assert 0.0 < mask.mean() < 0.6  # a region, not the whole crop
        # The mask sits on the face: its centre within the landmarks' box.
        ys, xs = np.nonzero(mask > 0.5 * mask.max())
        lo, hi = points.min(axis=0) * 224, points.max(axis=0) * 224
        assert lo[0] <= xs.mean() <= hi[0] and lo[1] <= ys.mean() <= hi[1]
        soft = ((mask > 0.02 * mask.max()) & (mask < 0.98 * mask.max())).sum()
        assert soft > 0  # a soft edge, not a cut
    assert {"face", "eyes", "mouth", "nose"} <= regions


def test_the_changed_copy_is_the_same_face_slightly_changed(astronaut):
    from training.sbi import changed_copy, self_blend

    _, _, points, face = astronaut
    for seed in range(10):
        copy = changed_copy(face, np.random.default_rng(seed))
        assert copy.shape == face.shape and 0 <= copy.min() and copy.max() <= 255
        assert np.corrcoef(copy.ravel(), face.ravel())[0, 1] > 0.7  # a shift of up to 3% included
        assert 0 < np.abs(copy - face).mean() < 40
    a = self_blend(face, points, np.random.default_rng(7))[0]
    b = self_blend(face, points, np.random.default_rng(7))[0]
    np.testing.assert_array_equal(a, b)  # a seed repeats


@pytest.mark.parametrize("mode", ["add", "only"])
def test_every_real_sits_next_to_its_own_blend_in_the_same_batch(small_manifest, private_cache, mode, monkeypatch):
    from training import sbi
    from training.data import load_dataset
    from training.facecrops import face_crops
    from training.sbi import face_landmarks, paired_dataset

    samples = load_dataset(str(small_manifest)).samples
    crops = face_crops([s.path for s in samples], progress=False)
    points = face_landmarks([s.path for s in samples], crops, progress=False)
    n_real = sum(s.label == 0 for s in samples)
    with_points = sum(p is not None for s, p in zip(samples, points) if s.label == 0)
    assert with_points >= n_real - 2  # the astronaut's face is found in almost every crop
    monkeypatch.setattr(sbi, "changed_copy", lambda image, rng: image + 30.0)  # so a blend is recognisable
    ds, info = paired_dataset(samples, crops, points, 224, 6, mode, seed=0, class_weight={0: 1.0, 1: 1.0})
    assert info["pairs"] == with_points
    batches = list(ds)
    assert len(batches) == ds.cardinality().numpy()
    xs = np.concatenate([np.asarray(b[0]) for b in batches])
    ys = np.concatenate([np.asarray(b[1]).reshape(-1) for b in batches])
    expected = 2 * with_points + (len(samples) - with_points if mode == "add" else n_real - with_points)
    assert len(ys) == expected
    if mode == "only":
        assert ys.sum() == with_points  # no collection fakes: every fake is a blend
    # Pairs: a real, then its blend: the same pixels plus up to 30 (the known copy) through the mask.
    pairs = 0
    for i in range(0, len(ys) - 1):
        if ys[i] == 0 and ys[i + 1] == 1:
            d = xs[i + 1] - xs[i]
            if d.min() > -1e-3 and 5 < d.max() < 30 + 1e-3:
                pairs += 1
                assert i % 2 == 0  # pairs start on even positions: never split across a batch
    assert pairs == with_points


def test_train_with_self_blended_images(small_manifest, tmp_path, unmask, private_cache):
    import json

    from tests.training.test_train import WEIGHTS

    run = tmp_path / "sbi"
    status, out, err = unmask("train", "--model", "tiny", "--data", small_manifest, "--out", run, "--epochs", "1",
                              "--fine-tune-epochs", "0", "--batch-size", "8", "--weights", WEIGHTS, "--sbi", "only",
                              "--no-evaluate")
    assert status == 0, err
    assert "self-blended images (only):" in out and "get a fresh blended copy each epoch" in out
    info = json.loads((run / "detector.json").read_text())
    assert info["training"]["args"]["sbi"] == "only"


def test_validation_blends_stay_the_same_and_training_blends_change(small_manifest, private_cache):
    from training.data import load_dataset
    from training.facecrops import face_crops
    from training.sbi import face_landmarks, paired_dataset

    samples = [s for s in load_dataset(str(small_manifest)).samples if s.label == 0][:6]
    crops = face_crops([s.path for s in samples], progress=False)
    points = face_landmarks([s.path for s in samples], crops, progress=False)

    def two_passes(fresh):
        ds, _ = paired_dataset(samples, crops, points, 128, 4, "only", seed=1, class_weight=None, fresh=fresh)
        return [np.concatenate([np.asarray(b[0]) for b in ds]) for _ in range(2)]

    a, b = two_passes(fresh=False)
    np.testing.assert_array_equal(a, b)
    a, b = two_passes(fresh=True)
    assert not np.array_equal(a, b)


def test_no_real_face_with_landmarks_is_a_clear_error(small_manifest):
    from training.data import load_dataset
    from training.sbi import paired_dataset

    samples = load_dataset(str(small_manifest)).samples
    with pytest.raises(ValueError, match="no real face with landmarks to blend"):
        paired_dataset(samples, [None] * len(samples), [None] * len(samples), 128, 4, "add", seed=0, class_weight=None)
    with pytest.raises(ValueError, match="sbi mode must be add or only"):
        paired_dataset(samples, [None] * len(samples), [None] * len(samples), 128, 4, "off", seed=0, class_weight=None)
