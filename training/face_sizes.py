"""Verdicts on small faces: do they keep what the calibration promises (issue 20, item 8)?

  python -m training.face_sizes --models models/bundled/tiny models/bundled/ensemble --data ../shared/data/faces-v1

One face moves: shown at 64 px it gets another p(fake) than at 256 px (bench section
face-stability). What a person relies on is the verdict, so this measures the verdicts of a
whole test split at each face size. Each model's test split is evaluated (`unmask evaluate`)
as it is and with every face crop shrunk as if the face were 128, 96, 64 and 48 px tall in
its picture (`--degrade faceN`; 48 px is the smallest face judged; a crop already smaller
stays as it is, and where a tight picture cut the crop the face is somewhat larger than N).
Per size: the mean AUC over the sources with both labels, the precision of the `fake` and
`real` verdicts at the shipped thresholds (the calibration's target is 90%), the share of
faces that get either, the largest share of any source's reals called `fake` (at most 5%
on validation), and how many faces' verdicts differ from their verdict as is (and how many
went from `fake` to `real` or back). Recorded in docs/results/face-sizes.json (table face-sizes of
docs/EVALUATION.md) with a plot, docs/figures/face-sizes.png.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from training.evaluate import FACE_SIZES

RESULTS = "docs/results/face-sizes.json"
FIGURE = "docs/figures/face-sizes.png"
AS_IS = "as is"


def summary(metrics: dict) -> dict:
    """The figures of one evaluation (its metrics.json) that this study compares."""
    cal = metrics["calibration"]
    false_alarms = {s: d["false_fake_rate_on_reals"] for s, d in metrics["per_source"].items()
                    if d.get("n_real") and d.get("false_fake_rate_on_reals") is not None}
    return {
        "faces": metrics["data"]["n_scored"],
        "mean_auc_paired": metrics["mean_auc_two_label_sources"],
        "auc": {s: d["roc_auc"] for s, d in metrics["per_source"].items() if d.get("roc_auc") is not None},
        "precision_fake": cal["precision_fake"],
        "precision_real": cal["precision_real"],
        "share_confident": cal["coverage"],
        "false_alarm_by_source": false_alarms,
        "worst_false_alarm": max(false_alarms.values()) if false_alarms else None,
    }


def verdicts(folder: Path) -> dict[str, str]:
    """path -> verdict, from an evaluation's predictions.csv (unreadable files left out)."""
    import csv

    with (folder / "predictions.csv").open(newline="") as f:
        return {r["path"]: r["verdict"] for r in csv.DictReader(f) if r["verdict"] != "error"}


def changes(shown: dict[str, str], as_is: dict[str, str]) -> dict:
    """How many faces' verdicts differ from their verdict as is, and how many of those went from
    `fake` to `real` or back (the change a person would be misled by)."""
    common = shown.keys() & as_is.keys()
    return {"changed": sum(shown[k] != as_is[k] for k in common),
            "opposite": sum({shown[k], as_is[k]} == {"fake", "real"} for k in common), "of": len(common)}


def plot(results: dict, path: Path) -> Path:
    """One panel per model: each figure against the face's size, as is at the right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from training.plots import _save

    models = results["models"]
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.2), squeeze=False)
    for ax, (name, sizes) in zip(axes[0], models.items()):
        labels = list(sizes)
        xs = range(len(labels))
        for key, label, style in (("mean_auc_paired", "mean AUC (paired sources)", "o-"),
                                  ("precision_fake", "precision of `fake`", "s-"),
                                  ("precision_real", "precision of `real`", "^-"),
                                  ("share_confident", "share with a verdict", "d--"),
                                  ("worst_false_alarm", "worst source's reals called fake", "x:")):
            ax.plot(xs, [sizes[s][key] if sizes[s][key] is not None else float("nan") for s in labels], style, label=label)
        ax.axhline(0.9, color="grey", lw=0.6)
        ax.axhline(0.05, color="grey", lw=0.6)
        ax.set_xticks(list(xs), [s if s == AS_IS else f"{s} px" for s in labels])
        ax.set_ylim(0, 1)
        ax.set_xlabel("face height in its picture")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[0][0].legend(loc="center left", fontsize=8)
    fig.suptitle("Verdicts on the test split by face size (lines at 90% precision and 5% false alarms)")
    return _save(fig, path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.face_sizes", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", required=True, type=Path,
                   help="model folders with a split.json (a bundled model or an `unmask train` run)")
    p.add_argument("--data", help="where the data lies now (default: the folder each split.json records)")
    p.add_argument("--out", type=Path, default=Path("runs/face-sizes"), help="folder for the evaluations (default runs/face-sizes)")
    p.add_argument("--record", type=Path, default=Path(RESULTS),
                   help=f"results file to write (default {RESULTS}); docs/EVALUATION.md's face-sizes table reads it")
    p.add_argument("--figure", type=Path, default=Path(FIGURE), help=f"the plot (default {FIGURE})")
    p.add_argument("--doc", type=Path, help="the document whose tables are made again (default docs/EVALUATION.md)")
    args = p.parse_args(argv)
    from training import report
    from training.bundle import sh, unmask
    from training.data import recorded

    missing = [str(m) for m in args.models if not (m / "split.json").is_file()]
    if missing:
        print(f"training.face_sizes: error: no split.json in {', '.join(missing)} (a bundled model or an `unmask train` run)",
              file=sys.stderr)
        return 2
    log: list[str] = []
    models = {}
    for model in args.models:
        sizes = {}
        for n in (*sorted(FACE_SIZES), None):
            degrade = [] if n is None else ["--degrade", f"face{n}"]
            out = args.out / model.name / (f"face{n}" if n else "clean")
            sh(unmask(), "evaluate", model, *(["--data", args.data] if args.data else []), *degrade, "--out", out, "--quiet", log=log)
            sizes[str(n) if n else AS_IS] = summary(json.loads((out / "metrics.json").read_text()))
        as_is = verdicts(args.out / model.name / "clean")
        for n in FACE_SIZES:
            sizes[str(n)]["verdicts_from_as_is"] = changes(verdicts(args.out / model.name / f"face{n}"), as_is)
        models[model.name] = sizes
    results = {"about": "test split of each model, every face crop shrunk as if the face were N px tall (unmask evaluate "
                        "--degrade faceN), and as is", "models": models, "figure": recorded(args.figure),
               "command": "python -m training.face_sizes --models " + " ".join(recorded(m) for m in args.models)
                          + (f" --data {args.data}" if args.data else ""), "commands": log}
    plot(results, args.figure)
    report.record(results, args.record, args.doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
