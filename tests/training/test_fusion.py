"""The false-alarm-budget fusion (models/fusion.py) on scores drawn here: its bound on reals
of every source, and a specialist adding what it alone catches."""
from __future__ import annotations

import numpy as np
import pytest

from models.fusion import BudgetFusion, RealTail


def test_tail_is_the_share_of_reals_at_least_as_suspicious():
    t = RealTail.fit([0.1, 0.2, 0.3, 0.4])
    # (1 + reals >= s) / (n + 1)
    assert t.tail([0.05, 0.3, 0.9]).tolist() == [1.0, 3 / 5, 1 / 5]


def test_the_largest_tail_over_sources_counts():
    # Source b's reals score high: a face at 0.5 is extreme for a, ordinary for b: not extreme.
    scores = np.r_[np.linspace(0, 0.2, 30), np.linspace(0.4, 0.6, 30)]
    t = RealTail.fit(scores, ["a"] * 30 + ["b"] * 30)
    assert t.tail([0.5])[0] > 0.3
    assert t.tail([0.9])[0] == pytest.approx(1 / 31)


def test_budget_bounds_false_alarms_per_source_and_a_specialist_adds_recall():
    rng = np.random.default_rng(0)
    n = 4000
    # Two members, two sources of reals with different score levels; new reals from the same law.
    def reals(k):
        src = np.repeat(["a", "b"], k // 2)
        shift = np.where(src == "a", 0.0, 1.0)[:, None]
        return rng.normal(0, 1, (k, 2)) + shift, src
    fit_scores, fit_src = reals(n)
    fusion = BudgetFusion.fit(["generalist", "specialist"], fit_scores, fit_src, budget=0.05)
    new, new_src = reals(n)
    called = fusion.evidence(new) < 0.05
    for s in ("a", "b"):
        assert called[new_src == s].mean() <= 0.05  # union bound: about 0.025 + 0.025 at most
    # Fakes the generalist cannot see (its score like a real's) but the specialist can.
    fakes = np.c_[rng.normal(0, 1, 500), rng.normal(6, 1, 500)]
    assert (fusion.evidence(fakes) < 0.05).mean() > 0.9


def test_real_verdicts_come_from_the_stack_and_fake_overrides():
    fusion = BudgetFusion.fit(["m"], np.linspace(0, 1, 99)[:, None])
    v = fusion.verdicts([[0.5], [5.0], [0.5]], ["real", "real", "fake"])
    assert v == ["real", "fake", "uncertain"]


def test_a_share_no_source_can_resolve_is_refused():
    # 5 members at 5%: 1% each; a source of 80 reals cannot give a tail under 1/81.
    scores = np.random.default_rng(1).normal(size=(160, 5))
    with pytest.raises(ValueError, match="nothing could ever be called fake"):
        BudgetFusion.fit(list("abcde"), scores, ["s"] * 80 + ["t"] * 80)
    BudgetFusion.fit(list("ab"), scores[:, :2], ["s"] * 80 + ["t"] * 80)  # 2.5% each: resolvable


def test_no_reals_is_a_clear_error():
    with pytest.raises(ValueError, match="no real faces"):
        RealTail.fit([])


def test_flat_then_decay_is_flat_for_three_quarters_then_falls_to_zero():
    from training.train import flat_then_decay

    lr = flat_then_decay(1e-3, 40)
    assert [lr(e) for e in (0, 29)] == [1e-3, 1e-3]
    assert lr(30) == pytest.approx(1e-3) and lr(35) == pytest.approx(5e-4) and lr(39) == pytest.approx(1e-4)
    assert all(lr(e) >= lr(e + 1) for e in range(39))
