"""python -m training.shortcuts: which faces it takes, what it measures and how it reports it
(small synthetic folders named like faces-v1's sources; the figures themselves are measured on
faces-v1 and recorded in docs/results/shortcuts.json)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from models import backbones, weights as weight_files
from tests.synthetic import face_image, manifest_folder
from training import report, shortcuts as S
from training.data import Sample

SOURCES = (*S.REAL_SOURCES, *S.FAKE_ONLY)
needs_weights = pytest.mark.skipif(not (weight_files.FOLDER / backbones.FILES["mobilenet_v2"]).is_file(),
                                   reason=f"MobileNet v2 ImageNet archive not in {weight_files.FOLDER}")


def samples(n_per_cell=10):
    return [Sample(f"/x/{src}/{lbl}/{i:03d}.jpg", lbl, src, f"{src}-{lbl}-g{i // 2}")
            for src in SOURCES for lbl in (0, 1) for i in range(n_per_cell)]


def test_it_takes_the_reals_of_the_real_sources_and_the_fakes_of_the_fake_only_ones_as_whole_groups():
    chosen = S.choose(samples(), 4, seed=1)
    cells = {(s.source, s.label) for s in chosen}
    assert cells == {(s, 0) for s in S.REAL_SOURCES} | {(s, 1) for s in S.FAKE_ONLY}
    for cell in cells:
        picked = [s for s in chosen if (s.source, s.label) == cell]
        groups = {s.group for s in picked}
        assert len(picked) == 4 and all(sum(s.group == g for s in samples()) == sum(s.group == g for s in picked)
                                        for g in groups)
    assert S.choose(samples(), 4, seed=1) == chosen
    assert len(S.choose(samples(), 0, seed=1)) == 5 * 10  # 0: every image of those cells


def test_signal_and_framing_features():
    x = face_image("fake", 64, 0).astype(np.float32)
    f = S.signal_features(x)
    assert f.shape == (len(S.SIGNAL_NAMES),) and np.isfinite(f).all()
    np.testing.assert_allclose(f[S.SIGNAL_NAMES.index("mean_r")], x[..., 0].mean(), rtol=1e-5)
    flat = S.signal_features(np.full((64, 64, 3), 100, np.float32))
    assert flat[S.SIGNAL_NAMES.index("laplacian_energy")] == 0 and flat[S.SIGNAL_NAMES.index("residual_std")] == 0
    np.testing.assert_allclose(S.framing_features((10, 20, 100), (200, 300, 3)), [0.5, 60 / 300, 70 / 200, 100])


def test_separable_collections_score_one_and_a_signal_the_chain_removed_scores_chance():
    """Before: a feature that names the source; after the chain: nothing left (constant
    features, so the classifier can only guess one class): exactly 1 and exactly chance."""
    chosen = S.choose(samples(), 0, seed=1)
    src = np.array([s.source for s in chosen])
    named = (src[:, None] == np.array(SOURCES)[None]).astype(np.float32) * 3
    zeros = np.zeros_like(named)
    features = {"deep": named, "signal": named, "framing": named, "deep_chain": zeros, "signal_chain": zeros}
    out = S.tasks(chosen, features, seed=1)
    three = out["real-sources"]
    assert three["chance"] == pytest.approx(1 / 3) and three["n"] == {s: 10 for s in S.REAL_SOURCES}
    for name, res in three["features"].items():
        assert res["before"]["balanced_accuracy"] == 1.0
        assert np.trace(res["before"]["confusion"]) == 30
        if name == "framing":
            assert "after" not in res  # a chain of pixels does not move the face box
        else:
            assert res["after"]["balanced_accuracy"] == pytest.approx(1 / 3)
            assert np.sum(res["after"]["confusion"], axis=1).tolist() == [10, 10, 10]
    for real in S.REAL_SOURCES:
        pair = out[f"{real}-vs-fake-only"]
        assert pair["chance"] == 0.5 and list(pair["n"].values()) == [10, 20]
        assert pair["features"]["pixels"]["before"]["balanced_accuracy"] == 1.0
        assert pair["features"]["pixels"]["after"]["balanced_accuracy"] == pytest.approx(0.5)


def test_the_table_is_made_again_from_the_results_file(tmp_path):
    chosen = S.choose(samples(), 0, seed=1)
    src = np.array([s.source for s in chosen])
    named = (src[:, None] == np.array(SOURCES)[None]).astype(np.float32)
    features = {k: named for k in ("deep", "signal", "framing", "deep_chain", "signal_chain")}
    results = {"command": "python -m training.shortcuts --data D --out O", "faces": 50, "seconds": 60.0,
               "tasks": S.tasks(chosen, features, seed=1)}
    (tmp_path / "docs" / "results").mkdir(parents=True)
    (tmp_path / "docs" / "results" / "s.json").write_text(json.dumps(results))
    doc = "x\n<!-- table shortcuts from docs/results/s.json: python -m training.report -->\nstale\n<!-- end table shortcuts -->\ny\n"
    new = report.regenerate(doc, tmp_path)
    assert "stale" not in new and new.startswith("x\n") and new.endswith("y\n")
    assert "`python -m training.shortcuts --data D --out O`" in new
    assert "| the real sources apart (dfdc 10, stylegan1-ffhq 10, yonsei-photoshop 10) | 0.333 |" in new
    assert new.count("| 1.000 | 1.000 | 0.000 |") == 4 * 3  # pixels, deep, signal of every task
    assert new.count("not moved by the chain") == 4


def test_data_without_faces_v1_sources_is_a_clear_error(small_manifest, tmp_path, capsys):
    assert S.main(["--data", str(small_manifest), "--out", str(tmp_path / "out"), "--no-record", "--quiet"]) == 2
    assert "has no dfdc" in capsys.readouterr().err and not (tmp_path / "out").exists()


@needs_weights
def test_features_of_each_face_before_and_after_the_chain(tmp_path):
    from tests.synthetic import write_image

    paths = [write_image(tmp_path / f"{i}.jpg", face_image(("real", "fake")[i % 2], 80, i)) for i in range(3)]
    chosen = [Sample(str(p), i % 2, "dfdc", str(i)) for i, p in enumerate(paths)]
    f = S.extract(chosen, [(0, 0, 80), (10, 10, 60), (0, 0, 80)], seed=1, progress=False)
    assert f["deep"].shape == f["deep_chain"].shape == (3, 1280)
    assert f["signal"].shape == f["signal_chain"].shape == (3, len(S.SIGNAL_NAMES))
    np.testing.assert_allclose(f["framing"][1], [60 / 80, 0.5, 0.5, 60])
    assert all(np.abs(f["deep"][i] - f["deep_chain"][i]).max() > 0 for i in range(3))  # every face went through it
