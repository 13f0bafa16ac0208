"""The rules that combine a detector with a self-blended specialist, judged on sources left out
(issue 17, item 2: the budget rule beside the fitted stack and the equal vote, left out).

  python -m training.loso --data ../shared/data/faces-v1 --model tiny --limit 3000 --epochs 2 --fine-tune-epochs 2 --runs runs/loso-base
  python -m training.loso ... (the same) --train-args "--sbi only" --runs runs/loso-sbi
  python -m training.fusion_left_out --baselines runs/loso-base --specialists runs/loso-sbi --data ../shared/data/faces-v1

For each source S with a fold in both folders (tiny-without-S: trained without any image of
S; the specialist trained with --sbi only on the fold's reals, so it never saw a fake), both
members score the fold's validation faces, and S's faces beside the fold's test reals of the
other sources (as `unmask evaluate --split left-out` does). Everything fitted is fitted on the
fold's validation split, which holds nothing of S. Rules:
- baseline: the fold's baseline alone, with its own calibration (the leave-one-source-out row);
- stack: a logistic regression on both members' logits, fitted on validation (what the shipped
  ensemble does), then calibrated on validation as any detector is;
- equal: the members' logits averaged, calibrated on validation;
- budget: models/fusion.py, tails among the validation reals; `real` where the baseline says so.
  A source with too few validation reals for its own tail under the budget's share
  (per_source_min_reals) counts only in the pooled tail.
Per fold, the left-out figure of each rule's score (AUC against S's own reals; for a source of
fakes only, the share of its fakes above the score that 5% of the test reals reach), and its
verdicts: S's fakes and reals called `fake`, the worst other source's reals called `fake`, and
how many of the confident verdicts on S are right. Recorded in docs/results/fusion-left-out.json
(table fusion-left-out of docs/EVALUATION.md).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

RESULTS = "docs/results/fusion-left-out.json"
RULES = ("baseline", "stack", "equal", "budget")


def _sigmoid(z):
    return 1 / (1 + np.exp(-np.asarray(z, np.float64)))


def per_source_min_reals(budget: float, members: int = 2) -> int:
    """The fewest validation reals a source needs to get its own tail under the budget's share:
    a source of n reals cannot give a tail under 1 / (n + 1). The quick folds hold 20-40
    reals of some sources; with fewer than this they count only in the pooled tail, where the
    product's rule (models/fusion.py) would refuse the whole fit."""
    from models.fusion import MIN_SOURCE_REALS

    return max(MIN_SOURCE_REALS, math.ceil(members / budget - 1e-9) - 1)


def fold_rules(val: dict, left: dict, baseline_cal, budget: float) -> dict:
    """Each rule's (score, verdicts) on the left-out faces. val / left: {"m": (n, 2) member raw
    scores, baseline first; "y": labels; "src": sources}."""
    from sklearn.linear_model import LogisticRegression

    from models.calibration import fit_calibration, logit
    from models.fusion import BudgetFusion

    out = {"baseline": (left["m"][:, 0], baseline_cal.verdicts(left["m"][:, 0]))}
    stack = LogisticRegression().fit(logit(val["m"]), val["y"])
    stack_p = {k: stack.predict_proba(logit(d["m"]))[:, 1] for k, d in (("val", val), ("left", left))}
    cal = fit_calibration(stack_p["val"], val["y"], 0.9, budget, sources=val["src"])
    out["stack"] = (stack_p["left"], cal.verdicts(stack_p["left"]))
    equal = {k: _sigmoid(logit(d["m"]).mean(axis=1)) for k, d in (("val", val), ("left", left))}
    cal = fit_calibration(equal["val"], val["y"], 0.9, budget, sources=val["src"])
    out["equal"] = (equal["left"], cal.verdicts(equal["left"]))
    reals = val["y"] == 0
    try:
        fusion = BudgetFusion.fit(["baseline", "specialist"], val["m"][reals], val["src"][reals], budget,
                                  min_source_reals=per_source_min_reals(budget))
    except ValueError as e:  # too few validation reals for the budget's share: said, not hidden
        out["budget"] = str(e)
    else:
        out["budget"] = (-np.log(fusion.evidence(left["m"])), fusion.verdicts(left["m"], out["baseline"][1]))
    return out


def rule_figures(score, verdicts, y, src, source: str) -> dict:
    """One rule on one fold: its ranking figure on `source` and what its verdicts do there."""
    from training.evaluate import LEFT_OUT_FALSE_ALARM, threshold_at_false_alarm
    from training.fusion import rule_metrics

    s, v, y, src = np.asarray(score, np.float64), np.asarray(verdicts), np.asarray(y), np.asarray(src)
    mine = src == source
    ref = (~mine) & (y == 0)
    metrics = rule_metrics(v, s, y, src)
    row = metrics["sources"][source]
    paired = (y[mine] == 0).any() and (y[mine] == 1).any()
    if paired:
        figure = row["auc"]
    else:
        t = threshold_at_false_alarm(s[ref], LEFT_OUT_FALSE_ALARM)
        figure = None if t is None else float((s[mine & (y == 1)] >= t).mean())
    others = [r["reals_called_fake"] for name, r in metrics["sources"].items() if name != source and "reals_called_fake" in r]
    return {"kind": "paired" if paired else "fake-only", "figure": figure,
            "fakes_called_fake": row.get("fakes_called_fake"), "reals_called_fake": row.get("reals_called_fake"),
            "with_a_verdict": row["confident"], "verdicts_right": row.get("confident_right"),
            "worst_other_reals_called_fake": max(others) if others else None}


def fold(baseline: Path, specialist: Path, data, budget: float, cache: Path) -> dict:
    from models.detector import Detector
    from models.tensorflow_import import import_tensorflow
    from training.data import load_left_out, load_split
    from training.facecrops import with_faces
    from training.fusion import member_scores

    import_tensorflow()
    source, left = load_left_out(baseline, data)
    splits = load_split(baseline, data)
    reals = [s for s in splits["test"] if s.label == 0 and s.source != source]
    sets = {}
    for key, samples in (("val", splits["val"]), ("left", left + reals)):
        faces, crops, _ = with_faces(samples, progress=False)
        m = np.concatenate([member_scores(str(f), faces, crops, False, cache)[1] for f in (baseline, specialist)], axis=1)
        sets[key] = {"m": m, "y": np.array([s.label for s in faces]), "src": np.array([s.source for s in faces])}
    rules = fold_rules(sets["val"], sets["left"], Detector.load(baseline).calibration, budget)
    return {"source": source, "faces": {k: int(len(d["y"])) for k, d in sets.items()},
            "rules": {name: (r if isinstance(r, str) else rule_figures(*r, sets["left"]["y"], sets["left"]["src"], source))
                      for name, r in rules.items()}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.fusion_left_out", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baselines", required=True, type=Path, help="training.loso's runs folder of the detector")
    p.add_argument("--specialists", required=True, type=Path, help="training.loso's runs folder of the specialist (--sbi only)")
    p.add_argument("--data", help="where the data lies now (default: the folder each split.json records)")
    p.add_argument("--budget", type=float, default=0.05)
    p.add_argument("--record", type=Path, default=Path(RESULTS),
                   help=f"results file to write (default {RESULTS}); docs/EVALUATION.md's fusion-left-out table reads it")
    p.add_argument("--doc", type=Path, help="the document whose tables are made again (default docs/EVALUATION.md)")
    args = p.parse_args(argv)
    from training import report
    from training.data import recorded

    folds = sorted(d.name for d in args.baselines.glob("*-without-*") if (d / "model.keras").is_file()
                   and (args.specialists / d.name / "model.keras").is_file())
    if not folds:
        print(f"training.fusion_left_out: error: no finished fold (NAME-without-SOURCE/model.keras) is in both "
              f"{args.baselines} and {args.specialists}", file=sys.stderr)
        return 2
    results = {"budget": args.budget, "per_source_min_reals": per_source_min_reals(args.budget), "folds": {}, "command": (
        f"python -m training.fusion_left_out --baselines {recorded(args.baselines)} --specialists {recorded(args.specialists)}"
        + (f" --data {args.data}" if args.data else ""))}
    for name in folds:
        print(f"fold {name}", flush=True)
        r = fold(args.baselines / name, args.specialists / name, args.data, args.budget, args.baselines / "fusion-scores")
        results["folds"][r["source"]] = r
    report.record(results, args.record, args.doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
