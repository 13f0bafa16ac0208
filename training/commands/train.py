"""Train a detector on a folder of real and fake images (or videos) and leave a run folder
with the model, its calibration, its data split, its history and its evaluation.

  unmask train --model tiny --data ../shared/data/faces-v1 --out runs/tiny

Steps, in order: read and check the data (the summary lists skipped files); split it 80/10/10
by group; build the tf.data pipelines; build the model (or resume it); fit with checkpoints,
early stopping, TensorBoard logs and a CSV history; save the detector; fit the calibration
on the validation split; evaluate on the test split.

Leave-one-source-out (--leave-out SOURCE): the images of one source go into none of the
splits; they are recorded in split.json ("left_out") and `unmask evaluate RUN --split
left-out` scores them (training/loso.py runs the whole protocol, one source after another).

Per model: `tiny` and `pretrained` (ImageNet MobileNet backbones) train their head with the
backbone frozen (--epochs), then fine-tune the backbone (--fine-tune-epochs). `ensemble`
loads trained members (--members RUN_A,RUN_B; an ensemble given there gives its members) and
fits only the stacking weights on the
validation split. `tuned-cnn --tune N` first searches N configurations with short runs
(training/tune.py).

RUN_DIR afterwards: model.keras, detector.json (with calibration and training summary),
split.json, data.json (every skipped file), history.csv, checkpoints/{last,best}.keras,
logs/ (TensorBoard), and what `unmask evaluate` writes (with --leave-out, also eval-left-out/).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path

from training.commands import CLIError
from training.train import (
    DEFAULTS, calibrate, ensemble_members_and_data, evaluate, evaluate_left_out, fit_ensemble, fit_model,
    member_labels, prepare_run_dir, print_split, read_and_split, read_state, weights_choice, write_state,
)


def rescale_floor(text: str) -> str:
    """--rescale-floor: a share in (0, 1], or smallest-face."""
    if text == "smallest-face":
        return text
    try:
        share = float(text)
    except ValueError:
        share = -1.0
    if not 0 < share <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share between 0 and 1, nor smallest-face")
    return text


def add_arguments(p: argparse.ArgumentParser) -> None:
    from models.preprocessing import contract  # not the registry: it imports Keras, and --help must be fast

    p.add_argument("--model", required=True, choices=list(contract()["models"]), help="which detector to train")
    p.add_argument("--data", help="data folder: real/ and fake/ below it, a manifest.csv, or videos with metadata.json "
                                  "(--resume and ensemble: optional, the recorded split is used)")
    p.add_argument("--out", help="run folder to write (default runs/MODEL-TIMESTAMP)")
    p.add_argument("--epochs", type=int, help="epochs (tiny, pretrained: of the head phase); default per model")
    p.add_argument("--batch-size", type=int, help="batch size; default per model")
    p.add_argument("--lr", type=float, help="learning rate; default per model")
    p.add_argument("--seed", type=int, default=1337, help="seed for the split, shuffling, augmentation and weights")
    p.add_argument("--balance", choices=["class-weight", "oversample", "none"], default="class-weight",
                   help="how to handle imbalanced labels (default class-weight)")
    p.add_argument("--no-augment", action="store_true", help="train without augmentation and web degradations")
    p.add_argument("--same-chain", action="store_true",
                   help="also push every training image, real or fake, through one processing chain (crop jitter, "
                        "rescale 0.5-1 and back, JPEG 60-95; training/augment.py), so that the collections' own "
                        "framing, size and compression stop telling the label (issue 17, python -m training.shortcuts)")
    # No default here: training.augment imports TensorFlow, which the CLI must not do at start-up;
    # training_augmentation falls back to AugmentConfig's.
    p.add_argument("--rescale-floor", type=rescale_floor, metavar="SHARE|smallest-face",
                   help="the random rescale shrinks a training crop to between this share of its side and all of it "
                        "(default: AugmentConfig.min_rescale, the bundled models' 0.4); smallest-face: down to the smallest face crop judged, 77 px (steadier across "
                        "sizes, worse on unseen generators: docs/EVALUATION.md)")
    p.add_argument("--sbi", choices=["off", "add", "only"], default="off",
                   help="self-blended images (training/sbi.py): each real face next to a blended copy of itself, made "
                        "afresh every epoch; add: besides the collection fakes; only: instead of them (default off)")
    p.add_argument("--resume", action="store_true",
                   help="continue RUN_DIR from its last checkpoint and epoch, on its recorded split (raise --epochs or "
                        "--fine-tune-epochs to train a finished run further)")
    p.add_argument("--patience", type=int, default=4, help="early stopping: epochs without a better val AUC")
    p.add_argument("--schedule", choices=["plateau", "flat-then-decay"], default="plateau",
                   help="plateau (default): halve the rate when val AUC stalls, stop early, keep the best val AUC; "
                        "flat-then-decay: the self-blending authors' recipe for a specialist whose validation cannot "
                        "pick the model: the rate flat for the first 3/4 of the epochs, then down linearly, every "
                        "epoch run, and the LAST weights kept")
    p.add_argument("--limit", type=int, default=0, help="use only about N images (whole groups), for quick runs")
    p.add_argument("--extra", action="append", default=[], metavar="DIR",
                   help="another data folder to train on beside --data, each image under its own source (e.g. the "
                        "extension's or `unmask feedback export`'s user-reports folder); it takes part in the split, the "
                        "calibration and the per-source tables like any source (repeatable; --limit does not apply to it)")
    p.add_argument("--split-from", metavar="RUN",
                   help="train on the split recorded in another run or bundled model (e.g. models/bundled/ensemble), "
                        "so that a new member of an ensemble never trains on the ensemble's test split")
    p.add_argument("--leave-out", metavar="SOURCE",
                   help="train without one source of the data: its images go into none of train/val/test, are "
                        "recorded in split.json, and `unmask evaluate RUN --split left-out` scores them "
                        "(--limit applies before: the left-out source keeps its share)")
    p.add_argument("--target-precision", type=float, default=0.9,
                   help="precision that a confident fake/real verdict must reach on validation (default 0.9)")
    p.add_argument("--max-false-alarm", type=float, default=0.05,
                   help="share of the real validation images that may be called fake, of the reals of every source "
                        "(default 0.05; a source with under 20 reals there: of all reals pooled); 1 turns it off")
    p.add_argument("--min-short-side", type=int, default=150, help="skip images smaller than this on their short side")
    p.add_argument("--frames-per-video", type=int, default=8, help="frames sampled from each video")
    p.add_argument("--cache-dir", help="where face crops from videos are kept (default ~/.cache/unmask/faces)")
    g = p.add_argument_group("tiny and pretrained (ImageNet MobileNet backbones)")
    g.add_argument("--weights", default="shared", metavar="shared|imagenet|none|FOLDER",
                   help="backbone weights: shared (the folder of models/weights.py: $UNMASK_WEIGHTS, else "
                        "../shared/weights beside the checkout), FOLDER (any folder laid out as docs/weights.md "
                        "describes), imagenet (Keras downloads its own MobileNet v1 weights), none (random: one "
                        "phase, everything trained)")
    g.add_argument("--alpha", type=float, choices=[0.25, 1.0], default=1.0, help="pretrained: MobileNet width")
    g.add_argument("--backbone", choices=["mobilenet", "mobilenet_v2", "xception"], default="mobilenet",
                   help="pretrained: the ImageNet backbone (mobilenet: v1; mobilenet_v2: the port in models/backbones.py, "
                        "weights from the shared folder); xception needs --weights imagenet (a download)")
    g.add_argument("--fine-tune-epochs", type=int, help="epochs fine-tuning the backbone after the head; default per model")
    g.add_argument("--fine-tune-lr", type=float, help="learning rate while fine-tuning the backbone; default per model")
    g = p.add_argument_group("ensemble")
    g.add_argument("--members", help="comma-separated run folders of the trained members, e.g. runs/tuned,runs/pretrained; "
                                     "an ensemble among them (e.g. models/bundled/ensemble) gives its members, and "
                                     "ENSEMBLE#MEMBER one of them (e.g. models/bundled/ensemble#pretrained), so an "
                                     "ensemble can be restacked with a new member")
    g.add_argument("--stack", choices=["fit", "equal"], default="fit",
                   help="fit: the members' logit weights are fitted on validation (default); equal: an equal vote "
                        "(1/n each), for members whose strength the validation split cannot show (e.g. trained "
                        "for unseen methods); calibration is fitted either way")
    g = p.add_argument_group("tuned-cnn")
    g.add_argument("--tune", type=int, default=0, metavar="N", help="first try N configurations on validation")
    g.add_argument("--tune-epochs", type=int, default=2, help="epochs per tuning trial")
    p.add_argument("--no-evaluate", action="store_true", help="skip the evaluation at the end")


def run(args) -> int:
    if getattr(args, "same_chain", False) and args.no_augment:
        raise CLIError("--same-chain is part of the augmentation: drop --no-augment, or --same-chain")
    weights_choice(args.weights)  # a --weights folder that is not there: said now, not after reading the data
    if not 0 <= args.max_false_alarm <= 1:
        raise CLIError(f"--max-false-alarm is the share of real images that may be called fake, from 0 to 1 "
                       f"(1 turns the bound off); got {args.max_false_alarm:g}")
    from models.tensorflow_import import import_tensorflow

    import_tensorflow()
    import keras

    import models.architectures  # noqa: F401  registers custom layers for loading checkpoints
    from training.data import DatasetError

    settings = {**DEFAULTS[args.model], **{k: v for k, v in {
        "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "fine_tune_epochs": args.fine_tune_epochs,
        "fine_tune_lr": args.fine_tune_lr,
    }.items() if v is not None}}
    run_dir = Path(args.out or f"runs/{args.model}-{dt.datetime.now():%Y%m%d-%H%M%S}")
    state = prepare_run_dir(run_dir, args)
    keras.utils.set_random_seed(args.seed)
    started = time.time()

    # 1-2. Data: read, check, split (a resumed run keeps its split).
    if args.model == "ensemble":
        members, data_root, layout, summary, splits, left = ensemble_members_and_data(args)
    else:
        members = None
        data_root, layout, summary, splits, left = read_and_split(args, run_dir, resume=args.resume)
    print_split(splits)
    from training.data import recorded, save_split

    save_split(run_dir, data_root, args.seed, splits, left.samples if left else None, left.source if left else None)
    (run_dir / "data.json").write_text(json.dumps(summary, indent=1))
    if not splits["train"] and args.model != "ensemble":
        raise DatasetError("the training split is empty; add more images (or a larger --limit)")
    if not splits["val"]:
        raise DatasetError("the validation split is empty: too few groups to split 80/10/10; add more images")

    # 3-5. Model and fit.
    if args.model == "ensemble":
        model, epochs_run = fit_ensemble(members, splits, settings, args, run_dir)
    else:
        model, epochs_run = fit_model(splits, settings, args, run_dir, state)

    # 6. Save, calibrate on validation, evaluate.
    from models.detector import Detector

    detector = Detector(model, args.model, info={"name": args.model})
    if members:
        detector.info["members"] = member_labels(members)
        detector.info["member_architectures"] = [m.architecture for m in members]
        detector.info["member_runs"] = [str(m.path) for m in members]
    training_info = {
        "data": recorded(data_root), "layout": layout, "counts": summary.get("counts"), "labels": summary.get("labels"),
        "skipped": summary.get("skipped"),
        "split_sizes": {k: {"total": len(v), "real": sum(s.label == 0 for s in v), "fake": sum(s.label == 1 for s in v)}
                        for k, v in splits.items()},
        "left_out": left.info() if left else None,
        "seed": args.seed, "args": {k: v for k, v in vars(args).items() if not k.startswith("_")},
        "settings": settings, "epochs_run": epochs_run, "backend": keras.backend.backend(),
        "epoch_seconds": read_state(run_dir).get("epoch_seconds", []),
        # Wall time of every session that got this far (a resumed run adds to the earlier ones).
        "seconds": round(state.get("seconds", 0.0) + time.time() - started, 1),
    }
    detector.save(run_dir, training=training_info)
    calibrate(detector, splits["val"], args)
    write_state(run_dir, {**read_state(run_dir), "done": True, "seconds": training_info["seconds"]})
    print(f"saved detector to {run_dir} ({detector.model.count_params():,} parameters)")
    if not splits["test"]:
        print("note: the test split is empty (too few groups of images), so there is nothing to evaluate on; "
              "evaluate on another folder with `unmask evaluate RUN_DIR --data DIR --split all`")
    elif not args.no_evaluate:
        evaluate(run_dir)
    if left and not args.no_evaluate:
        evaluate_left_out(run_dir)
    return 0
