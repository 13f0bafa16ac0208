"""Specialists trained on real faces only, judged as left-out detectors.

  python -m training.specialists --runs runs/sbi-device --data ../shared/data/faces-v1

A self-blended specialist (`unmask train --sbi only`) never sees a fake: every fake source of
faces-v1 is unseen for it by construction, so each figure below is a left-out figure from one
training run. Each run folder is evaluated on its test split clean and web-degraded (`unmask
evaluate`, as `make models` evaluates the bundled detectors). Per fake source, from the
evaluation's predictions.csv: the ROC AUC against that source's own reals (sources with both
labels) and against all test reals (every fake source, the fake-only ones included). With how
long it trained, recorded in docs/results/specialists.json; the table of docs/EVALUATION.md
is made again from it (training/report.py).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

SPECIALISTS = "docs/results/specialists.json"


def aucs_per_source(predictions: Path) -> dict[str, dict]:
    """Per fake source: {"own_reals": AUC or None, "all_reals": AUC, "fakes": n}, on raw p(fake)."""
    from sklearn.metrics import roc_auc_score

    with predictions.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if not r["error"]]
    reals = [(r["source"], float(r["p_fake_raw"])) for r in rows if r["label"] == "real"]
    out = {}
    for source in sorted({r["source"] for r in rows if r["label"] == "fake"}):
        fakes = [float(r["p_fake_raw"]) for r in rows if r["label"] == "fake" and r["source"] == source]
        own = [p for s, p in reals if s == source]
        auc = lambda neg: float(roc_auc_score([0] * len(neg) + [1] * len(fakes), neg + fakes)) if neg else None  # noqa: E731
        out[source] = {"fakes": len(fakes), "own_reals": auc(own), "all_reals": auc([p for _, p in reals])}
    return out


def describe(run: Path, metrics: dict) -> dict:
    """One specialist's record: how it was trained, and its figures clean and web-degraded."""
    detector = json.loads((run / "detector.json").read_text())
    training = detector.get("training", {})
    args = training.get("args", {})
    clean, web = aucs_per_source(run / "predictions.csv"), aucs_per_source(run / "eval-test-web" / "predictions.csv")
    return {
        "model": detector.get("architecture"), "parameters": detector.get("parameters"),
        "input_size": detector["preprocessing"]["input_size"],
        "recipe": {k: args.get(k) for k in ("sbi", "schedule", "epochs", "fine_tune_epochs", "seed", "split_from")},
        "batch_size": training.get("settings", {}).get("batch_size"),
        "epochs_run": training.get("epochs_run"),
        "train_hours": round(sum(training.get("epoch_seconds", [])) / 3600, 2),
        "auc": clean,
        "web_auc": web,
        "mean_auc_paired": metrics["clean"]["mean_auc_two_label_sources"],
        "web_mean_auc_paired": metrics["web"]["mean_auc_two_label_sources"],
        "share_uncertain": metrics["clean"]["calibration"]["share_uncertain"],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.specialists", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", required=True, type=Path, help="run folders of specialists trained with --sbi only")
    p.add_argument("--data", help="where the runs' data lies now (default: the folder recorded in each split.json)")
    p.add_argument("--record", type=Path, default=Path(SPECIALISTS),
                   help=f"results file to write (default {SPECIALISTS}); docs/EVALUATION.md's specialists table reads it")
    args = p.parse_args(argv)
    from training import report
    from training.bundle import evaluate_all
    from training.data import from_record, recorded

    missing = [str(r) for r in args.runs if not (r / "model.keras").is_file()]
    if missing:
        print(f"training.specialists: error: no model.keras in {', '.join(missing)} (a finished `unmask train` run folder)",
              file=sys.stderr)
        return 2
    first = args.runs[0]
    data = Path(args.data) if args.data else from_record(json.loads((first / "split.json").read_text())["data"])
    log = [f"python -m training.specialists --runs {' '.join(str(r) for r in args.runs)}"
           + (f" --data {recorded(data)}" if args.data else "")]
    runs = {r.name: r for r in args.runs}
    metrics = evaluate_all(runs, data, log)
    results = {"about": "specialists trained on real faces only; every fake source is left out by construction. "
                        "Test split of " + recorded(data),
               "specialists": {name: describe(run, metrics[name]) for name, run in runs.items()}, "commands": log}
    report.record(results, args.record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
