"""Choosing the verdict thresholds on validation scores: precision, and the false-alarm bound."""
from __future__ import annotations

import json

import numpy as np
import pytest

from models.calibration import Calibration, choose_thresholds, fit_calibration


def scores(n_real=200, n_fake=300, seed=0):
    """Overlapping calibrated scores: reals around 0.35, fakes around 0.7."""
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.beta(3.5, 6.5, n_real), rng.beta(7, 3, n_fake)])
    return p, np.concatenate([np.zeros(n_real, int), np.ones(n_fake, int)])


def test_thresholds_reach_the_target_precision_at_the_widest_band():
    p, y = scores()
    fake_t, real_t, stats = choose_thresholds(p, y, 0.9)
    assert y[p >= fake_t].mean() >= 0.9 and (1 - y[p <= real_t]).mean() >= 0.9
    # The next lower fake threshold would miss the target: the band is as wide as allowed.
    lower = np.max(p[p < fake_t])
    assert lower < 0.5 or y[p >= lower].mean() < 0.9
    assert stats["false_alarm"] == (p[y == 0] >= fake_t).mean()


def test_the_false_alarm_bound_raises_the_fake_threshold_only_as_far_as_needed():
    p, y = scores()
    plain, real_plain, stats = choose_thresholds(p, y, 0.9)
    bound = stats["false_alarm"] / 2
    assert bound > 0, "these scores must call some reals fake at the precision target"
    fake_t, real_t, bounded = choose_thresholds(p, y, 0.9, max_false_alarm=bound)
    assert fake_t > plain and real_t == real_plain  # the real side is untouched
    assert bounded["false_alarm"] <= bound and y[p >= fake_t].mean() >= 0.9
    lower = np.max(p[p < fake_t])
    assert (p[y == 0] >= lower).mean() > bound  # one step lower breaks the bound
    # An unreachable bound means the model never says fake.
    never, _, _ = choose_thresholds(p, y, 0.9, max_false_alarm=-1)
    assert never > 1 and Calibration(fake_threshold=never).verdict(0.999999)["verdict"] != "fake"


def test_fit_calibration_records_the_bound_it_was_fitted_with():
    p, y = scores(seed=1)
    raw = np.clip(p, 1e-4, 1 - 1e-4)
    cal = fit_calibration(raw, y, 0.9, max_false_alarm=0.05)
    assert cal.max_false_alarm == 0.05 and cal.fitted_on["false_alarm"] <= 0.05
    again = Calibration.from_dict(cal.to_dict())
    assert again == cal
    assert Calibration.from_dict({"temperature": 1.2}).max_false_alarm is None  # older detector.json files


# --- the false-alarm bound per source of reals -------------------------------------------------
def two_kinds_of_reals(seed=0):
    """Calibrated scores where one source's reals look fake more often: 400 reals of "easy"
    (low scores), 100 of "hard" (a fifth of them high), 500 fakes of "gen"."""
    rng = np.random.default_rng(seed)
    easy = rng.beta(2, 8, 400)
    hard = np.concatenate([rng.beta(2, 6, 80), rng.uniform(0.75, 0.95, 20)])
    fakes = rng.beta(8, 2, 500)
    p = np.concatenate([easy, hard, fakes])
    y = np.array([0] * 500 + [1] * 500)
    src = np.array(["easy"] * 400 + ["hard"] * 100 + ["gen"] * 500)
    return p, y, src


def share_called_fake(p, y, src, name, t):
    return float(np.mean(p[(src == name) & (y == 0)] >= t))


def test_the_bound_holds_for_every_source_where_the_pooled_bound_fails_one():
    p, y, src = two_kinds_of_reals()
    pooled_t, _, pooled = choose_thresholds(p, y, 0.9, max_false_alarm=0.05)
    assert pooled["false_alarm"] <= 0.05
    assert share_called_fake(p, y, src, "hard", pooled_t) > 0.05, "the pooled bound must let one source exceed it"

    fake_t, real_t, stats = choose_thresholds(p, y, 0.9, max_false_alarm=0.05, sources=src)
    assert fake_t > pooled_t and real_t == choose_thresholds(p, y, 0.9)[1]  # the real side is untouched
    for name in ("easy", "hard"):
        assert share_called_fake(p, y, src, name, fake_t) <= 0.05
    assert y[p >= fake_t].mean() >= 0.9  # the precision rule still holds
    # As low as the bounds allow: one candidate lower breaks a source's bound or the precision.
    lower = np.max(p[p < fake_t])
    assert (max(share_called_fake(p, y, src, n, lower) for n in ("easy", "hard")) > 0.05
            or y[p >= lower].mean() < 0.9 or (p[y == 0] >= lower).mean() > 0.05)
    per = stats["false_alarm_per_source"]
    assert set(per) == {"easy", "hard"}  # sources of fakes only have no reals to count
    assert per["hard"] == {"n_real": 100, "called_fake": int(np.sum(p[400:500] >= fake_t)),
                           "share": share_called_fake(p, y, src, "hard", fake_t), "bounded": True}
    assert stats["false_alarm"] == (p[y == 0] >= fake_t).mean()


def test_a_source_with_few_reals_is_bounded_with_all_reals_pooled_only():
    p, y, src = two_kinds_of_reals()
    # "tiny": 10 reals, one of them scored above every fake; at 5%, none of 10 may be called fake.
    p = np.concatenate([p, [0.2] * 9 + [0.999]])
    y = np.concatenate([y, [0] * 10])
    src = np.concatenate([src, ["tiny"] * 10])
    fake_t, _, stats = choose_thresholds(p, y, 0.9, max_false_alarm=0.05, sources=src)
    assert fake_t <= 0.999  # it does not dictate the threshold alone ...
    tiny = stats["false_alarm_per_source"]["tiny"]
    assert tiny == {"n_real": 10, "called_fake": 1, "share": 0.1, "bounded": False}
    assert stats["false_alarm"] <= 0.05  # ... but counts in the pooled bound, which always applies
    assert all(v["share"] <= 0.05 for k, v in stats["false_alarm_per_source"].items() if v["bounded"])
    # With a lower minimum it is bounded like the others, and its one high real moves the threshold above it.
    strict, _, strict_stats = choose_thresholds(p, y, 0.9, max_false_alarm=0.05, sources=src, min_source_reals=10)
    assert strict > 0.999 and strict_stats["false_alarm_per_source"]["tiny"]["bounded"]


def test_sources_must_match_the_scores():
    p, y, src = two_kinds_of_reals()
    with pytest.raises(ValueError, match="one source per sample"):
        choose_thresholds(p, y, 0.9, max_false_alarm=0.05, sources=src[:-1])


def test_fit_calibration_with_sources_records_the_rule_and_the_false_alarms_per_source():
    p, y, src = two_kinds_of_reals(seed=2)
    raw = np.clip(p, 1e-4, 1 - 1e-4)
    cal = fit_calibration(raw, y, 0.9, max_false_alarm=0.05, sources=src)
    assert cal.min_source_reals == 20 and cal.max_false_alarm == 0.05
    per = cal.fitted_on["false_alarm_per_source"]
    assert all(v["share"] <= 0.05 and v["bounded"] for v in per.values())
    verdicts = np.array(cal.verdicts(raw))
    for name, v in per.items():
        assert v["called_fake"] == int(np.sum(verdicts[(src == name) & (y == 0)] == "fake"))
    assert Calibration.from_dict(json.loads(json.dumps(cal.to_dict()))) == cal  # as detector.json stores it
    assert fit_calibration(raw, y, 0.9, max_false_alarm=0.05).min_source_reals is None  # without sources: pooled


def test_a_detector_json_from_before_per_source_calibration_still_loads():
    old = {"temperature": 1.9611613649935074, "fake_threshold": 0.6436715509750585,
           "real_threshold": 0.1318012452783423, "target_precision": 0.9, "max_false_alarm": 0.1,
           "fitted_on": {"n": 1014, "precision_fake": 0.9017, "precision_real": 0.9029, "false_alarm": 0.0959,
                         "share_fake": 0.4014, "share_real": 0.1016, "share_uncertain": 0.497}}
    cal = Calibration.from_dict(old)
    assert cal.min_source_reals is None and "false_alarm_per_source" not in cal.fitted_on
    assert (cal.temperature, cal.fake_threshold, cal.real_threshold) == (old["temperature"], old["fake_threshold"],
                                                                         old["real_threshold"])
    assert cal.verdict(0.9)["verdict"] == "fake" and cal.verdict(0.01)["verdict"] == "real"
    assert Calibration.from_dict({**old, "a_later_field": 1}) == cal  # unknown keys are ignored


# --- unmask calibrate: a saved run, calibrated again on its validation split -------------------
@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A tiny detector saved as a run (briefly fitted, hand-set calibration) with a split.json
    whose validation split is every image of two sources with 20 reals each."""
    from tests.synthetic import manifest_folder, small_detector
    from training.data import load_dataset, save_split

    data = manifest_folder(tmp_path_factory.mktemp("calibrate-data"), n_per_label=20, size=160, group_size=2)
    run = tmp_path_factory.mktemp("runs") / "tiny"
    small_detector(run, "tiny", steps=2, fake_threshold=0.6, real_threshold=0.4)
    samples = load_dataset(data, progress=False).samples
    save_split(run, data, 1, {"train": [], "val": samples, "test": []})
    return run, data


def test_unmask_calibrate_refits_a_run_on_its_validation_faces(saved_run, tmp_path, unmask):
    import shutil

    from models.detector import Detector
    from training.calibrate import validation_scores
    from training.data import load_split

    run = tmp_path / "run"
    shutil.copytree(saved_run[0], run)
    model_stamp = (run / "model.keras").stat().st_mtime_ns
    status, out, err = unmask("calibrate", run, "--max-false-alarm", "0.25", "--target-precision", "0.6", "--quiet")
    assert status == 0, err
    assert "calibration on 80 validation images" in out and "reals called fake on validation: alpha" in out

    info = json.loads((run / "detector.json").read_text())
    cal = info["calibration"]
    assert cal["max_false_alarm"] == 0.25 and cal["target_precision"] == 0.6 and cal["min_source_reals"] == 20
    assert info["recalibrated"]["before"]["fake_threshold"] == 0.6
    assert "unmask calibrate" in info["recalibrated"]["command"]
    assert (run / "model.keras").stat().st_mtime_ns == model_stamp  # the model is not touched
    per = cal["fitted_on"]["false_alarm_per_source"]
    assert set(per) == {"alpha", "beta"} and all(v["n_real"] == 20 and v["bounded"] for v in per.values())

    # The figures are those of the detector as saved, on the validation face crops.
    det = Detector.load(run)
    p, y, src, no_face, errors = validation_scores(det, load_split(run)["val"], progress=False)
    assert len(y) == cal["fitted_on"]["n"] == 80 and not no_face and not errors
    verdicts = np.array(det.calibration.verdicts(p))
    for name, v in per.items():
        called = verdicts[(src == name) & (y == 0)] == "fake"
        assert v["called_fake"] == int(called.sum()) and v["share"] <= 0.25


def test_unmask_calibrate_errors(saved_run, tmp_path, unmask):
    from tests.synthetic import small_detector

    status, _, err = unmask("calibrate", saved_run[0], "--max-false-alarm", "1.5")
    assert status == 2 and "from 0 to 1" in err
    small_detector(tmp_path / "nosplit", "tiny")
    status, _, err = unmask("calibrate", tmp_path / "nosplit")
    assert status == 2 and "no recorded split" in err
