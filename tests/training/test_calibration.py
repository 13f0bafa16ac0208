"""Choosing the verdict thresholds on validation scores: precision, and the false-alarm bound."""
from __future__ import annotations

import numpy as np

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
