"""Evaluate a detector: metrics per source, calibration, plots, metrics.json and a model card.

    unmask evaluate runs/tiny                                  # the run's test split
    unmask evaluate runs/tiny --data ../shared/data/faces-v1   # the same, data moved
    unmask evaluate ensemble --data photos/ --split all        # every image of a folder
    unmask evaluate runs/tiny --degrade web                    # half size, then JPEG q60
    unmask evaluate runs/tiny --degrade face64                 # each face as if 64 px tall in its picture
    unmask evaluate runs/tiny-without-sd21 --split left-out    # the source a run was trained without

Reported: accuracy, precision, recall, F1 and ROC AUC (pooled, p(fake) >= 0.5 is "fake");
the confusion matrix and classification report; per source, the AUC where a source has both
labels and, for every source, TPR/TNR at 0.5 and the share of fakes called `fake` and of
reals called `real` at the shipped thresholds; the mean AUC over the sources with both
labels; calibration: ECE before and after, the precision of confident verdicts, coverage
and the share uncertain.

Left-out source (a run trained with `unmask train --leave-out SOURCE`; --split left-out):
its images are scored together with the real faces of the run's test split (the sources it
was trained on). For a source with real and fake images: the ROC AUC against its own reals;
for a fake-only source: the share of its fakes called fake at the threshold where at most 5%
of those test-split reals are called fake, and at the shipped (calibrated) threshold; and,
per real source, the share of its real faces called fake at the shipped threshold (false
alarms). Under "left_out" in metrics.json.

Written to --out (default: the model's folder for its own test split, else a subfolder
eval-SPLIT[-web]): metrics.json, predictions.csv, MODEL_CARD.md and PNGs (training_curves,
roc, confusion, verdicts, reliability, scores).
"""
from __future__ import annotations

from pathlib import Path

from training.evaluate import DEGRADATIONS, FACE_SIZES, evaluate_folder, evaluate_left_out, evaluate_run


def add_arguments(p):
    p.add_argument("model", metavar="RUN_DIR_OR_MODEL", help="a run folder, a .keras file, or tiny / ensemble")
    p.add_argument("--data", help="data folder (test split: where the run's data now lies; all: the folder to score)")
    p.add_argument("--split", choices=("test", "all", "left-out"),
                   help="test: the run's recorded test split (split.json); all: every image of --data; left-out: "
                        "the source the run was trained without (unmask train --leave-out), beside the reals of its "
                        "test split (default: test when the model folder has a split.json, else all)")
    p.add_argument("--out", help="folder for the results (default: see above)")
    p.add_argument("--degrade", choices=DEGRADATIONS, help="web: evaluate copies at half size, re-saved as JPEG q60; faceN (N = "
                   f"{', '.join(str(n) for n in FACE_SIZES)}): each face crop shrunk as if the face were N px tall")
    p.add_argument("--batch-size", type=int, default=32, help="images per model call (default: 32)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    from models.detector import resolve

    where = resolve(args.model)  # ModelNotFound (a FileNotFoundError) says how to get one
    folder = where if where.is_dir() else where.parent
    has_split = (folder / "split.json").is_file() and where.is_dir()
    split = args.split or ("test" if has_split else "all")
    if split in ("test", "left-out") and not has_split:
        raise ValueError(f"{args.model} has no recorded {split} split ({folder / 'split.json'}); "
                         "evaluate a whole folder with --data DIR --split all")
    if split == "all" and not args.data:
        raise ValueError("--split all needs --data DIR: the folder of real and fake images to evaluate on")
    suffix = f"-{args.degrade}" if args.degrade else ""
    if split == "left-out":
        evaluate_left_out(folder, args.data, out_dir=args.out, degrade=args.degrade, batch_size=args.batch_size,
                          progress=not args.quiet)
    elif split == "test":
        out = Path(args.out) if args.out else (folder if not args.degrade else folder / f"eval-test{suffix}")
        evaluate_run(folder, args.data, out_dir=out, degrade=args.degrade, batch_size=args.batch_size,
                     progress=not args.quiet)
    else:
        out = Path(args.out) if args.out else folder / f"eval-{Path(args.data).resolve().name}{suffix}"
        evaluate_folder(args.model, args.data, out_dir=out, degrade=args.degrade, batch_size=args.batch_size,
                        progress=not args.quiet)
    return 0
