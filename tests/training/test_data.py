"""Reading data folders (three layouts), validation of every file, and clear errors."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests.synthetic import bad_files, decompression_bomb, encode, face_image, image_tree, manifest_folder, write_image, write_video
from training.data import DatasetError, load_dataset


def by_name(ds):
    return {Path(s.path).name: s for s in ds.samples}


# --- layouts ------------------------------------------------------------------------------
def test_folders_at_any_depth_give_label_source_and_group(tmp_path):
    image_tree(tmp_path / "collection", n_per_label=3, size=160, sources=("alpha", "beta"))
    write_image(tmp_path / "real" / "top.jpg", face_image("real", 160, 500))
    write_image(tmp_path / "deep" / "er" / "fake" / "clip7_frame003.jpg", face_image("fake", 160, 501))
    write_image(tmp_path / "deep" / "er" / "fake" / "clip7_frame004.jpg", face_image("fake", 160, 502))
    (tmp_path / "README.txt").write_text("not data: outside real/ and fake/")
    write_image(tmp_path / "real" / ".hidden.jpg", face_image("real", 160, 503))

    ds = load_dataset(tmp_path, progress=False)

    assert ds.layout == "folders"
    assert len(ds.samples) == 2 * 2 * 3 + 3 and not ds.skipped
    s = by_name(ds)
    assert (s["alpha_real_000.jpg"].label, s["alpha_real_000.jpg"].source) == (0, "collection/alpha")
    assert (s["beta_fake_002.jpg"].label, s["beta_fake_002.jpg"].source) == (1, "collection/beta")
    assert (s["top.jpg"].label, s["top.jpg"].source) == (0, tmp_path.name)
    # Frames of one clip share a group; other files are their own group.
    assert s["clip7_frame003.jpg"].group == s["clip7_frame004.jpg"].group == "deep/er/clip7"
    assert s["alpha_real_000.jpg"].group != s["alpha_real_001.jpg"].group
    assert all(Path(x.path).is_absolute() for x in ds.samples)
    summary = ds.summary()
    assert summary["counts"]["collection/alpha"] == {"real": 3, "fake": 3}
    assert summary["labels"] == {"real": 7, "fake": 8}


def test_manifest_layout_reads_groups_and_skips_bad_rows(tmp_path):
    manifest_folder(tmp_path, n_per_label=4, size=160, sources=("alpha",), group_size=2)
    with open(tmp_path / "manifest.csv", "a", newline="") as f:
        w = csv.writer(f)
        w.writerow(["alpha/real/gone.jpg", "real", "alpha", "g-gone"])
        write_image(tmp_path / "alpha" / "odd.jpg", face_image("real", 160, 77))
        w.writerow(["alpha/odd.jpg", "maybe", "alpha", "g-odd"])

    ds = load_dataset(tmp_path, progress=False)

    assert ds.layout == "manifest"
    assert len(ds.samples) == 8
    assert {s.group for s in ds.samples} == {"alpha-g0", "alpha-g1"}
    assert {s.source for s in ds.samples} == {"alpha"}
    assert sorted(s.label for s in ds.samples) == [0] * 4 + [1] * 4
    assert ds.summary()["skipped"] == {"bad_label": 1, "missing": 1}


def test_manifest_without_required_columns_is_a_clear_error(tmp_path):
    write_image(tmp_path / "a.jpg", face_image("real", 160, 1))
    (tmp_path / "manifest.csv").write_text("file,kind\na.jpg,real\n")
    with pytest.raises(DatasetError, match="lacks the column"):
        load_dataset(tmp_path, progress=False)


def _blank_video(path: Path, seconds=1.0, fps=8, size=320):
    """A video with no face in it: a slowly changing grey gradient."""
    import av

    with av.open(str(path), "w") as c:
        st = c.add_stream("mpeg4", rate=fps)
        st.width = st.height = size
        st.pix_fmt = "yuv420p"
        ramp = np.linspace(40, 200, size, dtype=np.float32)
        for i in range(int(seconds * fps)):
            frame = np.repeat(np.repeat((ramp + i)[None, :, None], size, 0), 3, 2).astype(np.uint8)
            for packet in st.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                c.mux(packet)
        for packet in st.encode():
            c.mux(packet)


def test_video_folder_crops_faces_groups_by_source_video_and_caches(tmp_path):
    data, cache = tmp_path / "dfdc", tmp_path / "cache"
    for i, (name, label) in enumerate([("real_a.mp4", "real"), ("fake_a.mp4", "fake"), ("real_b.mp4", "real"), ("fake_b.mp4", "fake")]):
        write_video(data / name, label, seconds=1.0, fps=8, size=420, seed=i)  # face crops over 150 px
    _blank_video(data / "blank.mp4")
    (data / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    write_video(data / "stray.mp4", "real", seconds=0.5, fps=8, size=320, seed=9)
    meta = {
        "real_a.mp4": {"label": "REAL"}, "fake_a.mp4": {"label": "FAKE", "original": "real_a.mp4"},
        "real_b.mp4": {"label": "REAL"}, "fake_b.mp4": {"label": "FAKE", "original": "real_b.mp4"},
        "blank.mp4": {"label": "REAL"}, "broken.mp4": {"label": "FAKE", "original": "real_a.mp4"},
        "gone.mp4": {"label": "FAKE", "original": "real_b.mp4"},
    }
    (data / "metadata.json").write_text(json.dumps(meta))

    ds = load_dataset(data, frames_per_video=3, cache_dir=cache, progress=False)

    assert ds.layout == "videos"
    groups = {}
    for s in ds.samples:
        assert Path(s.path).is_file() and Path(s.path).is_relative_to(cache)
        groups.setdefault(s.group, set()).add(s.label)
    # Each fake is grouped with the real video it was made from.
    assert groups == {"real_a.mp4": {0, 1}, "real_b.mp4": {0, 1}}
    assert 4 <= len(ds.samples) <= 12
    reasons = ds.summary()["skipped"]
    blank = [s for s in ds.skipped if "blank.mp4@" in s.path]
    assert len(blank) == 3 and {s.reason for s in blank} == {"no_face"}  # every sampled frame
    assert len(ds.samples) + reasons["no_face"] == 4 * 3 + 3  # each sampled frame: a crop or a no_face
    assert reasons["missing"] == 1 and reasons["unlabelled"] == 1
    broken = [s for s in ds.skipped if s.path.endswith("broken.mp4")]
    assert len(broken) == 1 and broken[0].reason in ("corrupt", "not_a_video")

    # A second read reuses the crops instead of decoding the videos again.
    index_files = sorted(cache.glob("*/index.json"))
    stamps = [p.stat().st_mtime_ns for p in index_files]
    again = load_dataset(data, frames_per_video=3, cache_dir=cache, progress=False)
    assert [s.path for s in again.samples] == [s.path for s in ds.samples]
    assert [p.stat().st_mtime_ns for p in index_files] == stamps


def test_videos_inside_real_and_fake_folders_are_cropped_too(tmp_path):
    write_video(tmp_path / "clips" / "real" / "a.mp4", "real", seconds=0.5, fps=8, size=420, seed=1)
    write_image(tmp_path / "clips" / "fake" / "b.jpg", face_image("fake", 160, 2))
    ds = load_dataset(tmp_path, frames_per_video=2, cache_dir=tmp_path / "cache", progress=False)
    videos = [s for s in ds.samples if s.label == 0]
    assert videos and all(s.group == "clips/a.mp4" for s in videos)


# --- validation: every kind of bad file is skipped, counted and listed --------------------
def test_every_kind_of_bad_file_is_skipped_and_counted(tmp_path):
    image_tree(tmp_path, n_per_label=3, size=160, sources=("good",))
    bad = bad_files(tmp_path / "mixed" / "fake")  # corrupt, truncated, not_an_image, empty, too_small
    decompression_bomb(tmp_path / "mixed" / "fake" / "bomb.png", side=8000)
    (tmp_path / "mixed" / "fake" / "scan.tif").write_bytes(encode(face_image("fake", 160, 3), "TIFF"))
    # /proc/self/mem opens but every read fails: a genuinely unreadable file, even as root.
    (tmp_path / "mixed" / "real").mkdir(parents=True)
    (tmp_path / "mixed" / "real" / "unreadable.jpg").symlink_to("/proc/self/mem")
    # The same bytes twice under one label: one is kept. Under both labels: none.
    same = encode(face_image("real", 160, 40))
    (tmp_path / "mixed" / "real" / "dup_a.jpg").write_bytes(same)
    (tmp_path / "mixed" / "real" / "dup_b.jpg").write_bytes(same)
    both = encode(face_image("fake", 160, 41))
    (tmp_path / "mixed" / "real" / "conflict.jpg").write_bytes(both)
    (tmp_path / "mixed" / "fake" / "conflict.jpg").write_bytes(both)

    ds = load_dataset(tmp_path, progress=False)

    assert ds.summary()["skipped"] == {
        "conflicting_label": 2, "corrupt": 1, "duplicate": 1, "empty": 1, "not_an_image": 1, "too_many_pixels": 1,
        "too_small": 1, "truncated": 1, "unreadable": 1, "unsupported": 1,
    }
    kept = {Path(s.path).relative_to(tmp_path).as_posix() for s in ds.samples}
    assert "mixed/real/dup_a.jpg" in kept and "mixed/real/dup_b.jpg" not in kept
    assert not any("conflict" in k for k in kept)
    assert len(ds.samples) == 6 + 1
    skipped_paths = {Path(s.path).name for s in ds.skipped}
    assert {p.name for p in bad.values()} <= skipped_paths
    # The summary lists each skipped file with its reason, for a person to read.
    text = ds.format_summary()
    assert "skipped 11 file(s)" in text
    for name in ("tiny.png", "bomb.png", "truncated.jpg", "scan.tif", "dup_b.jpg"):
        assert name in text
    listed = ds.summary()["skipped_files"]
    assert len(listed) == 11 and all(x["message"] for x in listed)


def test_min_short_side_is_configurable(tmp_path):
    image_tree(tmp_path / "small", n_per_label=2, size=160, sources=("s",))
    image_tree(tmp_path / "large", n_per_label=2, size=240, sources=("s",), seed=100)
    assert len(load_dataset(tmp_path, progress=False).samples) == 8
    ds = load_dataset(tmp_path, min_short_side=200, progress=False)
    assert {s.source for s in ds.samples} == {"large/s"} and len(ds.samples) == 4
    assert ds.summary()["skipped"] == {"too_small": 4}


def test_validate_false_only_lists_files(tmp_path):
    image_tree(tmp_path, n_per_label=2, size=160, sources=("a",))
    bad_files(tmp_path / "a" / "fake")
    ds = load_dataset(tmp_path, validate=False, progress=False)
    assert len(ds.samples) == 4 + 5 and not ds.skipped


# --- folders that cannot be used ----------------------------------------------------------
def test_empty_folder_says_what_to_do(tmp_path):
    with pytest.raises(DatasetError, match=r"empty.*real/ and fake/.*manifest\.csv.*metadata\.json"):
        load_dataset(tmp_path, progress=False)


def test_folder_without_real_fake_or_manifest_says_what_to_do(tmp_path):
    write_image(tmp_path / "holiday" / "beach.jpg", face_image("real", 160, 1))
    with pytest.raises(DatasetError, match=r"1 file\(s\) but no real/ or fake/ folder"):
        load_dataset(tmp_path, progress=False)


def test_missing_folder_and_file_instead_of_folder(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "nowhere", progress=False)
    f = write_image(tmp_path / "one.jpg", face_image("real", 160, 1))
    with pytest.raises(DatasetError, match="is a file, not a folder"):
        load_dataset(f, progress=False)


def test_folder_of_only_bad_files_is_an_error_listing_why(tmp_path):
    bad_files(tmp_path / "real")
    with pytest.raises(DatasetError, match=r"no usable images.*corrupt: 1.*too_small: 1"):
        load_dataset(tmp_path, progress=False)


def test_broken_metadata_json_is_a_clear_error(tmp_path):
    write_video(tmp_path / "a.mp4", "real", seconds=0.5, fps=8, size=160)
    (tmp_path / "metadata.json").write_text("{not json")
    with pytest.raises(DatasetError, match="cannot read .*metadata.json"):
        load_dataset(tmp_path, progress=False)


def test_a_data_folder_beside_the_checkout_is_recorded_relative_to_it(tmp_path):
    from training.data import REPO, from_record, recorded

    beside = REPO.parent / "shared" / "data" / "faces-v1"
    assert recorded(beside) == "../shared/data/faces-v1" and from_record("../shared/data/faces-v1") == beside
    assert recorded(REPO / "runs" / "x") == "runs/x"
    assert recorded(tmp_path) == str(tmp_path) and from_record(str(tmp_path)) == tmp_path  # elsewhere: as it is
