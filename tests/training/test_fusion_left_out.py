"""training/fusion_left_out.py: the rules fitted on a fold's validation faces and judged on the
source it left out, on scores made here (a specialist that alone catches the left-out fakes)."""
from __future__ import annotations

import numpy as np

from models.calibration import fit_calibration
from training import fusion_left_out as F


def _scores(rng, y, separation):
    """Raw p(fake) whose logits sit `separation` apart for fakes and reals."""
    z = rng.normal(0, 1, len(y)) + separation * (np.asarray(y) - 0.5)
    return 1 / (1 + np.exp(-z))


def _fold(rng, n_val_reals=200):
    # Validation: two sources of reals and fakes the baseline knows; the specialist is blind there.
    val_y = np.array([0] * n_val_reals + [1] * n_val_reals)
    val_src = np.array((["a", "b"] * n_val_reals)[: 2 * n_val_reals])
    val = {"m": np.stack([_scores(rng, val_y, 4.0), _scores(rng, val_y, 0.0)], axis=1), "y": val_y, "src": val_src}
    # Left out: fakes of "new" that only the specialist sees, beside test reals of a and b.
    left_y = np.array([1] * 100 + [0] * 200)
    left_src = np.array(["new"] * 100 + ["a", "b"] * 100)
    baseline = _scores(rng, np.zeros(300), 4.0)  # the new fakes look as real as the reals to it
    specialist = np.where(left_y == 1, 0.9999, _scores(rng, np.zeros(300), 0.0))
    left = {"m": np.stack([baseline, specialist], axis=1), "y": left_y, "src": left_src}
    return val, left


def test_the_budget_rule_lets_the_specialist_catch_what_the_fitted_rules_ignore():
    rng = np.random.default_rng(0)
    val, left = _fold(rng)
    cal = fit_calibration(val["m"][:, 0], val["y"], 0.9, 0.05, sources=val["src"])
    rules = F.fold_rules(val, left, cal, 0.05)
    assert set(rules) == set(F.RULES)
    figures = {name: F.rule_figures(*r, left["y"], left["src"], "new") for name, r in rules.items()}
    for f in figures.values():
        assert f["kind"] == "fake-only" and f["reals_called_fake"] is None
    # The specialist's votes are worth nothing on validation, so the stack learns to ignore them.
    assert figures["budget"]["fakes_called_fake"] == 1.0
    assert figures["baseline"]["fakes_called_fake"] < 0.2 and figures["stack"]["fakes_called_fake"] < 0.3
    assert figures["budget"]["figure"] > 0.9 > figures["baseline"]["figure"]
    assert figures["budget"]["verdicts_right"] == 1.0
    # The budget holds on the other sources' reals (about 5%, allowing for 100 reals each).
    assert figures["budget"]["worst_other_reals_called_fake"] <= 0.12


def test_sources_with_too_few_reals_count_pooled_and_too_few_reals_in_all_is_said():
    assert F.per_source_min_reals(0.05) == 39  # a 2.5% share needs 1 / (n + 1) <= 0.025
    rng = np.random.default_rng(1)
    val, left = _fold(rng, n_val_reals=60)  # 30 reals per source: each counts only pooled (60 reals)
    cal = fit_calibration(val["m"][:, 0], val["y"], 0.9, 0.05, sources=val["src"])
    rules = F.fold_rules(val, left, cal, 0.05)
    assert not isinstance(rules["budget"], str)
    val, left = _fold(rng, n_val_reals=30)  # 30 reals in all: no tail can reach 2.5%
    rules = F.fold_rules(val, left, cal, 0.05)
    assert isinstance(rules["budget"], str) and "nothing could ever be called fake" in rules["budget"]
    assert not isinstance(rules["stack"], str)


def test_the_table_names_each_rule_and_the_refusals():
    from training.report import fusion_left_out

    def figures(kind, figure):
        return {"kind": kind, "figure": figure, "fakes_called_fake": 0.5, "reals_called_fake": 0.02 if kind == "paired" else None,
                "with_a_verdict": 0.4, "verdicts_right": 0.75, "worst_other_reals_called_fake": 0.06}

    results = {"budget": 0.05, "command": "python -m training.fusion_left_out --baselines B --specialists S", "folds": {
        "dfdc": {"rules": {r: figures("paired", 0.6) for r in F.RULES}},
        "sd21": {"rules": {**{r: figures("fake-only", 0.25) for r in F.RULES}, "budget": "too few reals"}}}}
    text = "\n".join(fusion_left_out(results))
    assert "| budget | AUC 0.600; fake 50.0%; right 75% of 40% | refused | 0.600 | — | 6.0% |" in text
    assert "| stack | AUC 0.600; fake 50.0%; right 75% of 40% | 25.0% at 5% FA; fake 50.0%; right 75% of 40% | 0.600 | 0.250 | 6.0% |" in text
    assert "budget refused on sd21: too few reals" in text


def test_no_finished_fold_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "b" / "tiny-without-x").mkdir(parents=True)
    assert F.main(["--baselines", str(tmp_path / "b"), "--specialists", str(tmp_path / "s")]) == 2
    assert "no finished fold" in capsys.readouterr().err
