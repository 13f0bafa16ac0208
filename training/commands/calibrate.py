"""Calibrate a trained detector again on its recorded validation split, without retraining.

  unmask calibrate runs/tiny                                   # the run's own validation split
  unmask calibrate models/bundled/tiny --data ../shared/data/faces-v1
  unmask calibrate runs/tiny --max-false-alarm 0.05 --target-precision 0.9
  unmask calibrate models/bundled/tiny --video --metadata extension/model/metadata.json   # the video calibration (training/video_calibration.py)

The validation images (RUN_DIR/split.json) are judged as training and inference judge them:
the largest face's crop (training/facecrops.py, cached), scored by the detector as `unmask
evaluate` scores the test split (training/scoring.py score_files); an image without a face is
left out and counted. Then, as at the end of `unmask train` (which runs this same code): a
temperature, and the two thresholds (models/calibration.py), so that each confident verdict
reaches --target-precision and `fake` is said of at most --max-false-alarm of the reals of
every source (a source with fewer than 20 reals in validation: of all reals pooled).

Rewrites the calibration in RUN_DIR/detector.json (the model is not touched) and notes the
calibration it replaced under "recalibrated". What was made with the old thresholds is then
stale: `unmask evaluate RUN_DIR` rewrites metrics.json, MODEL_CARD.md and the plots, and a
TF.js copy (`unmask convert`) carries the calibration in its metadata.json.
"""
from __future__ import annotations

import datetime as dt
import shlex

from training.calibrate import DEFAULT_MAX_FALSE_ALARM, calibrate_detector, check_max_false_alarm


def add_arguments(p) -> None:
    p.add_argument("model", metavar="RUN_DIR", help="a run folder with split.json (or tiny / ensemble: the bundled ones)")
    p.add_argument("--data", help="where the run's data now lies (default: the folder recorded in split.json)")
    p.add_argument("--max-false-alarm", type=float, default=DEFAULT_MAX_FALSE_ALARM,
                   help="share of the real validation images of every source that may be called fake "
                        f"(default {DEFAULT_MAX_FALSE_ALARM}); 1 turns it off")
    p.add_argument("--target-precision", type=float,
                   help="precision that a confident fake/real verdict must reach on validation "
                        "(default: the one the detector was calibrated with, else 0.9)")
    p.add_argument("--video", action="store_true",
                   help="fit the video calibration instead (training/video_calibration.py): validation frames grouped "
                        "into videos by the manifest's group, judged by the face-track aggregate")
    p.add_argument("--metadata", help="with --video: also write it into this metadata.json (the extension's model)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    check_max_false_alarm(args.max_false_alarm)
    if args.video:
        from training import video_calibration

        return video_calibration.run(args)
    if args.metadata:
        from training.commands import CLIError

        raise CLIError("--metadata goes with --video (the image calibration reaches metadata.json through `unmask convert`)")
    from models.detector import Detector, resolve
    from training.data import load_split

    where = resolve(args.model)  # ModelNotFound (a FileNotFoundError) says how to get one
    if not where.is_dir() or not (where / "split.json").is_file():
        raise ValueError(f"{args.model} has no recorded split ({where / 'split.json' if where.is_dir() else where}): "
                         "calibrate needs the validation split of the run that trained it")
    splits = load_split(where, args.data)
    if not splits.get("val"):
        raise ValueError(f"the validation split in {where / 'split.json'} is empty: nothing to calibrate on")
    detector = Detector.load(where)
    before = detector.calibration
    target = args.target_precision if args.target_precision is not None else before.target_precision
    calibrate_detector(detector, splits["val"], target, args.max_false_alarm, progress=not args.quiet)
    command = ["unmask", "calibrate", str(args.model)] + (["--data", str(args.data)] if args.data else []) + \
        ["--max-false-alarm", f"{args.max_false_alarm:g}", "--target-precision", f"{target:g}"]
    detector.info["recalibrated"] = {
        "command": shlex.join(command),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "before": {k: getattr(before, k) for k in ("temperature", "fake_threshold", "real_threshold",
                                                   "target_precision", "max_false_alarm")},
    }
    detector.save_info()
    print(f"before: temperature {before.temperature:.3f}, fake threshold {before.fake_threshold:.3f}, real threshold "
          f"{before.real_threshold:.3f}; wrote the new calibration into {where / 'detector.json'}")
    stale = [f for f in ("metrics.json", "MODEL_CARD.md") if (where / f).is_file()]
    if stale:
        print(f"note: {', '.join(stale)} in {where} were made with the old thresholds; "
              f"run `unmask evaluate {where}` to update them")
    return 0
