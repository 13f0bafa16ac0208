"""Splitting: grouped (no leak), stratified, deterministic; split.json round trip."""
from __future__ import annotations

import json
import random
import shutil
from collections import Counter

import pytest

from training.data import DatasetError, Sample, load_dataset, load_split, save_split, split_dataset, subsample


def synthetic_samples(seed: int = 0) -> list[Sample]:
    """~2,400 samples like faces-v1: sources with different real/fake mixes, groups of
    1..6 images, and some mixed groups (a real video and fakes made from it)."""
    rng = random.Random(seed)
    mixes = {"dfdc": (0.5, 1200), "ffhq": (0.5, 500), "sd21": (0.0, 300), "photoshop": (0.55, 400)}
    out = []
    for source, (p_real, n) in mixes.items():
        k = 0
        while k < n:
            size = rng.randint(1, 6)
            mixed = source == "dfdc" and rng.random() < 0.3
            label = 0 if rng.random() < p_real else 1
            for i in range(size):
                lbl = (i % 2) if mixed else label
                out.append(Sample(f"/data/{source}/{k:05d}.jpg", lbl, source, f"{source}-g{k}"))
                k += 1
    return out


def test_no_group_spans_two_splits():
    splits = split_dataset(synthetic_samples())
    where = {}
    for name, items in splits.items():
        for s in items:
            assert where.setdefault(s.group, name) == name, f"group {s.group} leaks into {name}"
    assert sum(len(v) for v in splits.values()) == len(synthetic_samples())


def test_split_is_80_10_10_per_label_and_per_source():
    samples = synthetic_samples()
    splits = split_dataset(samples)
    total = Counter((s.source, s.label) for s in samples)
    for name, share in (("train", 0.8), ("val", 0.1), ("test", 0.1)):
        by_label = Counter(s.label for s in splits[name])
        for label in (0, 1):
            n = sum(v for (src, lbl), v in total.items() if lbl == label)
            assert abs(by_label[label] / n - share) < 0.02, (name, label)
        by_stratum = Counter((s.source, s.label) for s in splits[name])
        for key, n in total.items():
            if n >= 200:  # a few groups of up to 6 cannot split a tiny stratum exactly
                assert abs(by_stratum[key] / n - share) < 0.05, (name, key)


def test_split_is_deterministic_and_independent_of_order():
    samples = synthetic_samples()
    a = split_dataset(samples, seed=7)
    shuffled = samples[:]
    random.Random(3).shuffle(shuffled)
    b = split_dataset(shuffled, seed=7)
    assert {k: [s.path for s in v] for k, v in a.items()} == {k: [s.path for s in v] for k, v in b.items()}
    c = split_dataset(samples, seed=8)
    assert [s.path for s in c["test"]] != [s.path for s in a["test"]]


def test_bad_fractions_are_refused():
    with pytest.raises(ValueError, match="summing to 1"):
        split_dataset(synthetic_samples(), fractions=(0.8, 0.1, 0.2))


def test_subsample_keeps_groups_whole():
    samples = synthetic_samples()
    part = subsample(samples, 300, seed=1)
    assert 300 <= len(part) < 310
    groups = Counter(s.group for s in samples)
    assert all(Counter(s.group for s in part)[g] == groups[g] for g in {s.group for s in part})
    assert subsample(samples, 300, seed=1) == part


def test_split_json_round_trip_and_moved_data(small_manifest, tmp_path):
    ds = load_dataset(small_manifest, progress=False)
    splits = split_dataset(ds.samples, seed=5)
    assert all(splits[k] for k in ("train", "val", "test"))
    run = tmp_path / "run"
    save_split(run, ds.root, 5, splits)

    doc = json.loads((run / "split.json").read_text())
    assert doc["seed"] == 5 and doc["data"] == str(ds.root)
    assert all(not p.startswith("/") for v in doc["splits"].values() for p in v)  # relative to the data
    assert load_split(run) == splits

    # The data moved: pass its new place.
    moved = tmp_path / "moved"
    shutil.copytree(small_manifest, moved)
    again = load_split(run, moved)
    assert [s.path.replace(str(moved), str(ds.root)) for s in again["test"]] == [s.path for s in splits["test"]]
    assert [(s.label, s.group) for s in again["val"]] == [(s.label, s.group) for s in splits["val"]]


def test_load_split_without_labels_rereads_the_data_folder(small_manifest, tmp_path):
    ds = load_dataset(small_manifest, progress=False)
    splits = split_dataset(ds.samples)
    save_split(tmp_path, ds.root, 1337, splits)
    doc = json.loads((tmp_path / "split.json").read_text())
    del doc["samples"]  # a split.json holding only paths, as the format requires at least
    (tmp_path / "split.json").write_text(json.dumps(doc))
    assert load_split(tmp_path) == splits


def test_load_split_errors_say_what_to_do(small_manifest, tmp_path):
    with pytest.raises(FileNotFoundError, match="no recorded split"):
        load_split(tmp_path)
    ds = load_dataset(small_manifest, progress=False)
    save_split(tmp_path, ds.root, 1, split_dataset(ds.samples))
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(DatasetError, match="not in .*elsewhere"):
        load_split(tmp_path, tmp_path / "elsewhere")


def test_three_groups_per_label_give_every_split_one():
    samples = [Sample(f"/d/{lbl}{g}{i}.jpg", lbl, "s", f"{lbl}-{g}") for lbl in (0, 1) for g in range(3) for i in range(3)]
    splits = split_dataset(samples)
    for name in ("train", "val", "test"):
        assert sorted(s.label for s in splits[name]) == [0, 0, 0, 1, 1, 1]
