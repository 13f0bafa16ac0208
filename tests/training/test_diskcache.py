"""training/diskcache.py: what the face crops' and landmarks' caches share."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_fill_computes_only_what_is_missing_and_keeps_it(tmp_path, suffix):
    from training import diskcache

    file = tmp_path / f"cache{suffix}"
    asked = []

    def compute(indexes):
        asked.append(list(indexes))
        return {i: [float(i), 2.0 * i] for i in indexes if i != 3}  # index 3: a file unreadable now

    keys = ["a", "b", None, "d", "e"]
    cache = diskcache.fill(file, keys, compute, batch=2, desc="test", progress=False)
    assert asked == [[0, 1], [3, 4]]  # None is never computed; batches of 2
    assert set(cache) == {"a", "b", "e"} and list(cache["e"]) == [4.0, 8.0]
    asked.clear()
    again = diskcache.fill(file, ["a", "e", "f"], compute, batch=2, desc="test", progress=False)
    assert asked == [[2]] and set(again) == {"a", "b", "e", "f"}  # read back from disk, only "f" computed
    assert sorted(p.name for p in tmp_path.iterdir()) == [file.name]  # no temporary file left


def test_a_landmarks_cache_written_before_the_helper_still_reads(tmp_path):
    from training import diskcache

    file = tmp_path / "mesh.npz"
    np.savez(file, keys=np.array(["x|1|2|None"]), points=np.zeros((1, 468, 2), np.float16))
    assert diskcache.load(file)["x|1|2|None"].shape == (468, 2)
