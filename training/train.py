"""Training a detector: the steps of `unmask train` (training/commands/train.py) - data, split,
pipelines, model, fit, calibration - each a function of the parsed arguments."""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from training.commands import CLIError
from training.data import from_record

# Defaults per model for 2 CPU cores (each run's detector.json records its epoch_seconds).
# Fine-tuning runs at fine_tune_lr. The first bundle fine-tuned at a tenth of the head's rate
# with batch norm frozen and still underfitted after 13 epochs (train AUC 0.81), hence the
# higher rate and batch norm adapting in the unfrozen blocks.
DEFAULTS = {
    "tiny": {"epochs": 1, "batch_size": 32, "lr": 1e-3, "fine_tune_epochs": 20, "fine_tune_lr": 3e-4},
    "seed-cnn": {"epochs": 10, "batch_size": 32, "lr": 1e-4},
    "tuned-cnn": {"epochs": 20, "batch_size": 32, "lr": 1e-3},
    "pretrained": {"epochs": 1, "batch_size": 32, "lr": 1e-3, "fine_tune_epochs": 10, "fine_tune_lr": 2e-4},
    "npr": {"epochs": 12, "batch_size": 32, "lr": 1e-3},
    "ensemble": {"epochs": 300, "batch_size": 64, "lr": 0.05},
}
MONITOR = "val_auc"
BN_MOMENTUM = 0.9  # see faster_batch_norm
# Where fine-tuning starts in a pretrained MobileNet backbone. The 0.25-wide one in tiny is
# small enough to adapt whole (from its first conv); the full-width one adapts its top blocks.
FINE_TUNE_FROM = {"tiny": "conv1", "pretrained": "conv_dw_6"}


def fine_tune_from(args) -> str | None:
    """The layer fine-tuning starts from; pretrained on MobileNet v2 from its first block at 1/16
    resolution, as conv_dw_6 is in v1 (models/architectures.py TINY_FINE_TUNE_FROM)."""
    if args.model == "pretrained" and getattr(args, "backbone", None) == "mobilenet_v2":
        from models.architectures import TINY_FINE_TUNE_FROM

        return TINY_FINE_TUNE_FROM["mobilenet_v2"]
    return FINE_TUNE_FROM.get(args.model)
STATE_FILE = "state.json"


# --- run folder ---------------------------------------------------------------------------
def prepare_run_dir(run_dir: Path, args) -> dict:
    ckpt = run_dir / "checkpoints"
    if args.resume:
        if not (ckpt / "last.keras").exists() and args.model != "ensemble":
            raise CLIError(f"nothing to resume in {run_dir}: no checkpoints/last.keras. Run without --resume.")
        state = read_state(run_dir)
        if state.get("model") not in (None, args.model):
            raise CLIError(f"{run_dir} is a {state['model']} run; resume it with --model {state['model']}")
        chain = bool(getattr(args, "same_chain", False))
        if state.get("same_chain", chain) != chain:  # a run started before the flag existed records none
            raise CLIError(f"{run_dir} was trained {'with' if state['same_chain'] else 'without'} --same-chain; "
                           f"resume it {'with' if state['same_chain'] else 'without'} it")
        return state
    if (run_dir / "model.keras").exists() or (ckpt / "last.keras").exists():
        raise CLIError(f"{run_dir} already holds a run; pass --resume to continue it, or choose another --out")
    ckpt.mkdir(parents=True, exist_ok=True)
    state = {"model": args.model, "epoch": 0, "phase": "train", "best": None,
             "same_chain": bool(getattr(args, "same_chain", False))}
    write_state(run_dir, state)
    return state


def read_state(run_dir: Path) -> dict:
    path = run_dir / "checkpoints" / STATE_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def finished(run: Path) -> bool:
    """The run finished: `unmask train` marks checkpoints/state.json done once calibrated."""
    for state in (run / "checkpoints" / STATE_FILE, run / STATE_FILE):
        if state.exists() and json.loads(state.read_text()).get("done", False):
            return True
    return False


def write_state(run_dir: Path, state: dict) -> None:
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run_dir / "checkpoints" / STATE_FILE).write_text(json.dumps(state, indent=1))


# --- data ---------------------------------------------------------------------------------
@dataclass
class LeftOut:
    """The source a run is trained without (--leave-out), and its images."""
    source: str
    samples: list
    dropped: int = 0  # images of other sources that share a group with it: used nowhere

    def info(self) -> dict:
        return {"source": self.source, "total": len(self.samples), "real": sum(s.label == 0 for s in self.samples),
                "fake": sum(s.label == 1 for s in self.samples), "dropped_sharing_a_group": self.dropped}


def read_and_split(args, run_dir: Path, resume: bool):
    """(data root, layout, summary, splits, LeftOut or None)."""
    from training.data import check_leave_out, load_dataset, load_left_out, load_split, split_dataset, subsample
    from training.facecrops import with_faces

    leave = getattr(args, "leave_out", None)
    if resume and (run_dir / "split.json").exists():
        old = json.loads((run_dir / "data.json").read_text()) if (run_dir / "data.json").exists() else {}
        splits = load_split(run_dir, args.data)  # --data only where the data has moved
        data_root = os.path.abspath(args.data) if args.data else str(from_record(json.loads((run_dir / "split.json").read_text())["data"]))
        source, left_samples = load_left_out(run_dir, args.data)
        if leave is not None and leave != source:
            raise CLIError(f"{run_dir} was trained " + (f"without {source}" if source else "on every source")
                           + "; resume it with " + (f"--leave-out {source}" if source else "no --leave-out"))
        print(f"resuming with the split recorded in {run_dir / 'split.json'} (data: {data_root})")
        left = LeftOut(source, left_samples) if source else None
        return data_root, old.get("layout"), old, splits, left
    if not args.data:
        raise CLIError("--data is required: a folder of real/ and fake/ images, a manifest.csv folder, or videos")
    extras = getattr(args, "extra", None) or []
    if getattr(args, "split_from", None):
        if extras:
            raise CLIError("--split-from and --extra do not go together: the recorded split says which images to use")
        return split_from(args, leave)
    dataset = load_dataset(args.data, min_short_side=args.min_short_side, frames_per_video=args.frames_per_video,
                           cache_dir=args.cache_dir)
    print(dataset.format_summary(), flush=True)
    samples = dataset.samples
    if args.limit:
        samples = subsample(samples, args.limit, args.seed)
        print(f"--limit {args.limit}: using {len(samples)} of {len(dataset.samples)} images")
    extra_samples, extra_summaries = read_extras(args, extras)
    samples = samples + extra_samples
    if leave is not None:  # before any work: an unknown or the only source
        check_leave_out(dataset.samples + extra_samples, leave, dataset.root)
    samples, _, no_face = with_faces(samples)  # trained on the face crops that inference judges
    summary = dataset.summary()
    if extras:
        summary["extra"] = extra_summaries
        for extra in extra_summaries:  # one table of sources for the run, --extra's included
            for source, c in extra["counts"].items():
                mine = summary["counts"].setdefault(source, {"real": 0, "fake": 0})
                mine["real"] += c["real"]
                mine["fake"] += c["fake"]
    summary["no_face"] = [s.path for s in no_face]
    if no_face:
        print(f"no face found in {len(no_face)} image(s): left out (listed in data.json under no_face)", flush=True)
    if not samples:
        raise CLIError(f"no face was found in any image of {dataset.root}: Unmask trains on faces")
    left = None
    if leave is not None:
        samples, left = split_off(samples, leave, args.limit)
        summary["left_out"] = left.info()
    return str(dataset.root), dataset.layout, summary, split_dataset(samples, args.seed), left


def read_extras(args, folders) -> tuple[list, list[dict]]:
    """The samples of each --extra folder, their groups kept apart from --data's (a group name
    means something only inside its own folder), and each folder's summary."""
    from dataclasses import replace

    from training.data import load_dataset

    samples, summaries = [], []
    for i, folder in enumerate(folders):
        extra = load_dataset(folder, min_short_side=args.min_short_side, frames_per_video=args.frames_per_video, cache_dir=args.cache_dir)
        print(f"--extra {folder}:\n{extra.format_summary()}", flush=True)
        samples += [replace(s, group=f"extra{i}:{s.group}") for s in extra.samples]
        summaries.append(extra.summary())
    return samples, summaries


def split_from(args, leave):
    """(data root, layout, summary, splits, None): the split recorded in args.split_from, its
    images without a face left out, as a fresh split would leave them out."""
    from models.detector import ModelNotFound, resolve
    from training.data import load_split
    from training.facecrops import with_faces

    if leave is not None:
        raise CLIError("--split-from and --leave-out do not go together: the recorded split holds every source")
    try:
        folder = resolve(args.split_from)
    except ModelNotFound as e:
        raise CLIError(f"--split-from: {e}") from None
    if not (folder / "split.json").is_file():
        raise CLIError(f"--split-from: {folder} records no split (no split.json)")
    recorded = load_split(folder, args.data)
    splits, no_face = {}, []
    for name, items in recorded.items():
        splits[name], _, lost = with_faces(items)
        no_face += lost
    print(f"using the split recorded in {folder / 'split.json'}"
          + (f"; no face found in {len(no_face)} image(s): left out" if no_face else ""), flush=True)
    counts = {}
    for s in (x for items in splits.values() for x in items):
        c = counts.setdefault(s.source, {"real": 0, "fake": 0})
        c["fake" if s.label else "real"] += 1
    summary = {"layout": "split-from", "split_from": str(folder), "counts": counts, "no_face": [s.path for s in no_face]}
    return os.path.abspath(args.data), "split-from", summary, splits, None


def split_off(samples, source: str, limit: int = 0) -> tuple[list, LeftOut]:
    """(the samples to split, the left-out source's), out of `samples` (faces found, --limit applied)."""
    from training.data import DatasetError, leave_out

    kept, left, dropped = leave_out(samples, source)
    if not left:
        why = f"--limit {limit} kept none of them; raise --limit" if limit else "no face was found in any of them"
        raise DatasetError(f"--leave-out {source}: no image of {source} is left to evaluate ({why})")
    if not kept:
        raise DatasetError(f"--leave-out {source}: nothing is left to train on")
    info = LeftOut(source, left, len(dropped))
    n = info.info()
    print(f"leaving out {source}: {n['total']} images ({n['real']} real, {n['fake']} fake), in no split; recorded in "
          f"split.json under left_out (`unmask evaluate RUN --split left-out` scores them)"
          + (f"; {len(dropped)} image(s) of other sources share a group with them and are used nowhere" if dropped else ""),
          flush=True)
    return kept, info


def print_split(splits) -> None:
    parts = [f"{name} {len(items)} ({sum(s.label == 0 for s in items)} real, {sum(s.label == 1 for s in items)} fake)"
             for name, items in splits.items()]
    print("split: " + ", ".join(parts), flush=True)


def pipelines(splits, input_size: int, settings: dict, args):
    """(train, val) datasets of (pixels, labels, weights); class weights go in the weights."""
    from training.facecrops import face_crops
    from training.pipeline import class_weights, make_dataset

    train = None
    augment_config = training_augmentation(args)
    class_weight = class_weights(splits["train"]) if args.balance == "class-weight" and splits["train"] else None
    if splits["train"] and getattr(args, "sbi", "off") != "off":
        train = self_blended_pipeline(splits["train"], input_size, settings, args, class_weight, augment_config=augment_config)
    elif splits["train"]:
        if class_weight:
            print(f"class weights: real {class_weight[0]:.3f}, fake {class_weight[1]:.3f}")
        train = make_dataset(splits["train"], input_size, settings["batch_size"], training=True, augment=not args.no_augment,
                             seed=args.seed, balance="oversample" if args.balance == "oversample" else "none",
                             augment_config=augment_config, class_weight=class_weight, with_weights=True,
                             crops=face_crops([s.path for s in splits["train"]]))
    if getattr(args, "sbi", "off") == "only":
        # Trained on reals and blends only, it is judged on the same task: the validation reals
        # and a fixed blended copy of each (the collections' fakes would pick the model that
        # learned least). Calibration still uses the validation split as it is.
        val = self_blended_pipeline(splits["val"], input_size, settings, args, None, validation=True)
    else:
        val = make_dataset(splits["val"], input_size, settings["batch_size"], training=False, with_weights=True,
                           crops=face_crops([s.path for s in splits["val"]]))
    return train, val


def training_augmentation(args):
    """The augmentation of training images: the defaults, and with --same-chain the one chain for every image."""
    from training.augment import AugmentConfig

    floor = getattr(args, "rescale_floor", None) or str(AugmentConfig.min_rescale)
    return AugmentConfig(same_chain=bool(getattr(args, "same_chain", False)),
                         min_rescale=None if floor == "smallest-face" else float(floor))


def self_blended_pipeline(samples, input_size: int, settings: dict, args, class_weight, validation: bool = False,
                          augment_config=None):
    """The training batches with self-blended pairs (training/sbi.py); validation=True: the
    same blends every epoch, no augmentation."""
    from functools import partial

    from training.augment import augment
    from training.facecrops import face_crops
    from training.sbi import face_landmarks, paired_dataset

    crops = face_crops([s.path for s in samples])
    real_at = [i for i, s in enumerate(samples) if s.label == 0]  # only reals are blended
    found = face_landmarks([samples[i].path for i in real_at], [crops[i] for i in real_at])
    points = [None] * len(samples)
    for i, p in zip(real_at, found):
        points[i] = p
    ds, info = paired_dataset(samples, crops, points, input_size, settings["batch_size"], args.sbi, args.seed,
                              class_weight, None if args.no_augment or validation else partial(augment, config=augment_config or training_augmentation(args)),
                              fresh=not validation)
    reals = len(real_at)
    print(f"self-blended images ({args.sbi}" + (", validation" if validation else "") + f"): {info['pairs']} of {reals} "
          "real faces get " + ("a fixed blended copy" if validation else "a fresh blended copy each epoch")
          + (f", {reals - info['pairs']} have no landmarks" if reals > info["pairs"] else "")
          + (f"; {info['single']} other images" if info["single"] else "")
          + (f"; class weights: real {info['class_weight'][0]:.3f}, fake {info['class_weight'][1]:.3f}" if class_weight else ""),
          flush=True)
    return ds


# --- fitting one model --------------------------------------------------------------------
def compile_model(model, lr: float) -> None:
    import keras

    # Weighted metrics honour the pipeline's weights: a file that no longer decodes has weight
    # 0, and training metrics are class-balanced under --balance class-weight (AUC is unchanged).
    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss="binary_crossentropy",
        weighted_metrics=[keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc"),
                 keras.metrics.Precision(name="precision"), keras.metrics.Recall(name="recall")],
    )


FLAT_SHARE = 0.75  # flat-then-decay: the rate is flat for this share of all epochs (SBI: 75 of 100)


def flat_then_decay(base_lr: float, total_epochs: int):
    """lr(epoch): base_lr until FLAT_SHARE of total_epochs, then linearly down towards 0."""
    flat = int(round(FLAT_SHARE * total_epochs))

    def lr(epoch: int, _current=None) -> float:
        if epoch < flat:
            return float(base_lr)
        return float(base_lr) * (total_epochs - epoch) / max(1, total_epochs - flat)
    return lr


def callbacks(run_dir: Path, phase: str, best, patience: int, append_history: bool, lr_schedule=None):
    """lr_schedule: None (halve on plateau, stop early) or lr(epoch) (every epoch runs)."""
    import keras

    ckpt = run_dir / "checkpoints"
    began = {}

    def remember(epoch, logs):
        state = read_state(run_dir)
        value = (logs or {}).get(MONITOR)
        if value is not None and (state.get("best") is None or value > state["best"]):
            state["best"] = float(value)
        seconds = state.get("epoch_seconds", [])[:epoch] + [round(time.time() - began["t"], 2)]  # train + validation
        write_state(run_dir, {**state, "epoch": epoch + 1, "phase": phase, "epoch_seconds": seconds})

    return [
        keras.callbacks.ModelCheckpoint(ckpt / "last.keras"),
        keras.callbacks.ModelCheckpoint(ckpt / "best.keras", monitor=MONITOR, mode="max", save_best_only=True,
                                        initial_value_threshold=best),
        keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: began.update(t=time.time()),
                                       on_epoch_end=remember),  # after the checkpoint, so state matches it
        *([keras.callbacks.ReduceLROnPlateau(monitor=MONITOR, mode="max", factor=0.5, patience=max(1, patience // 2),
                                             min_lr=1e-6),
           keras.callbacks.EarlyStopping(monitor=MONITOR, mode="max", patience=patience)] if lr_schedule is None else
          [keras.callbacks.LearningRateScheduler(lr_schedule)]),
        keras.callbacks.CSVLogger(run_dir / "history.csv", append=append_history),
        keras.callbacks.TensorBoard(log_dir=str(run_dir / "logs")),
    ]


def fit_model(splits, settings: dict, args, run_dir: Path, state: dict):
    """Build (or resume) and fit one model; returns (model with the best val AUC weights, epochs run).

    A model with a pretrained backbone (tiny, pretrained) trains in two phases: the head with
    the backbone frozen for `epochs`, then the backbone from FINE_TUNE_FROM upwards at
    `fine_tune_lr` for `fine_tune_epochs`. Other models train in one phase."""
    import keras

    from models.registry import get

    arch = get(args.model)
    train_ds, val_ds = pipelines(splits, arch.spec.input_size, settings, args)
    ckpt = run_dir / "checkpoints"
    epochs = settings["epochs"]

    if args.resume:
        model = keras.saving.load_model(ckpt / "last.keras")  # with its optimizer state
        start, phase = int(state.get("epoch", 0)), state.get("phase", "train")
        print(f"resuming {run_dir} at epoch {start} ({phase} phase)", flush=True)
    else:
        model = build_model(args, settings, train_ds, val_ds, run_dir)
        start, phase = 0, "train"
        if has_pretrained_backbone(model, args):
            set_backbone_trainable(model, False)
            phase = "head"
        compile_model(model, settings["lr"])
        model.summary(print_fn=lambda line, **_: print(line), line_length=100)
    two_phase = phase in ("head", "fine-tune")
    fine_tune = settings.get("fine_tune_epochs", 0) if two_phase else 0
    decay = getattr(args, "schedule", "plateau") == "flat-then-decay"

    # Phase 1: the whole model, or the head on a frozen pretrained backbone.
    if phase in ("train", "head") and start < epochs:
        if phase == "head":
            print(f"training the head for {epochs} epochs with the backbone frozen", flush=True)
        model.fit(train_ds, validation_data=val_ds, epochs=epochs, initial_epoch=start, shuffle=False,
                  callbacks=callbacks(run_dir, phase, read_state(run_dir).get("best"), args.patience, start > 0,
                                      flat_then_decay(settings["lr"], epochs) if decay and not fine_tune else None),
                  verbose=1)
        start = read_state(run_dir).get("epoch", epochs)
    # Phase 2: fine-tune the top of the backbone at a lower rate.
    if fine_tune:
        if phase != "fine-tune":
            phase, start = "fine-tune", max(start, epochs)
            set_backbone_trainable(model, True, fine_tune_from(args))
            compile_model(model, settings["fine_tune_lr"])
            write_state(run_dir, {**read_state(run_dir), "phase": phase, "epoch": start})
            print(f"fine-tuning the backbone from {fine_tune_from(args)} up for {fine_tune} epochs "
                  f"at lr {settings['fine_tune_lr']:g}", flush=True)
        total = epochs + fine_tune
        if start < total:
            model.fit(train_ds, validation_data=val_ds, epochs=total, initial_epoch=start, shuffle=False,
                      callbacks=callbacks(run_dir, phase, read_state(run_dir).get("best"), args.patience, True,
                                          flat_then_decay(settings["fine_tune_lr"], total) if decay else None),
                      verbose=1)
    epochs_run = int(read_state(run_dir).get("epoch", 0))
    if decay:
        print("kept the last weights (flat-then-decay: a validation of blends cannot pick the model)")
    elif (ckpt / "best.keras").exists():
        model = keras.saving.load_model(ckpt / "best.keras", compile=False)
        print(f"kept the weights with the best val AUC ({read_state(run_dir).get('best')})")
    return model, epochs_run


def backbone_of(model):
    """The pretrained feature extractor inside `model` (a nested model), or None."""
    import keras

    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    named = [layer for layer in nested if layer.name == "backbone"]
    return (named or nested or [None])[0]


def has_pretrained_backbone(model, args) -> bool:
    return args.weights != "none" and backbone_of(model) is not None


def build_model(args, settings, train_ds, val_ds, run_dir: Path):
    model = _build(args, settings, train_ds, val_ds, run_dir)
    faster_batch_norm(model, inside_backbone=not has_pretrained_backbone(model, args))
    return model


def faster_batch_norm(model, momentum: float = BN_MOMENTUM, inside_backbone: bool = True) -> None:
    """Batch norm's moving statistics start at mean 0, variance 1 and, at Keras's default
    momentum 0.99, need about a thousand steps to forget that. Until then the model gives
    near-constant scores in inference mode (validation AUC stuck at 0.5), which misleads
    early stopping and ruins short runs. A faster average fixes it. A pretrained backbone
    keeps its ImageNet statistics (they stay frozen), so it is left alone."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum
        elif isinstance(layer, keras.Model) and inside_backbone:
            faster_batch_norm(layer, momentum)


def weights_choice(value: str) -> tuple[str | None, Path | None]:
    """--weights as (what build_tiny / build_pretrained take, the folder to read them from):
    none, imagenet (Keras downloads them), shared (models/weights.py's folder) or a folder
    laid out as docs/weights.md describes."""
    if value in ("none", "imagenet", "shared"):
        return (None if value == "none" else value), None
    folder = Path(value).expanduser()
    if not folder.is_dir():
        raise CLIError(f"--weights {value}: no such folder; give none, imagenet, shared or a folder of ImageNet "
                       "weights laid out as docs/weights.md describes")
    return "shared", folder


def _build(args, settings, train_ds, val_ds, run_dir: Path):
    from models import architectures

    weights, folder = weights_choice(args.weights)
    if args.model == "pretrained":
        if args.backbone == "xception" and weights == "shared":
            raise CLIError("no Xception weights are stored here: use --weights imagenet (downloads them) or --weights none")
        return architectures.build_pretrained(backbone=args.backbone, alpha=args.alpha, weights=weights, weights_dir=folder)
    if args.model == "tiny":
        return architectures.build_tiny(weights=weights, weights_dir=folder)
    if args.model == "tuned-cnn" and args.tune:
        from training.tune import search

        best = search(train_ds, val_ds, args.tune, args.tune_epochs, args.seed, run_dir / "tuning", prepare=faster_batch_norm)
        c = best["config"]
        settings["lr"] = c["lr"]
        settings["tuned"] = c
        return architectures.build_tuned_cnn(filters=tuple(c["filters"]), dense=c["dense"], dropout=c["dropout"])
    from models.registry import build

    return build(args.model)


def set_backbone_trainable(model, trainable: bool, from_layer: str | None = None) -> None:
    """Freeze the whole backbone, or unfreeze it from `from_layer` upwards (None: all of it).
    Batch norm in the unfrozen blocks adapts too (from its ImageNet statistics): face crops
    and their compression are far from ImageNet, and with it frozen the first bundle's tiny
    underfitted."""
    import keras

    backbone = backbone_of(model)
    if not trainable:
        backbone.trainable = False
        return
    backbone.trainable = True
    names = [layer.name for layer in backbone.layers]
    cut = names.index(from_layer) if from_layer in names else 0
    for i, layer in enumerate(backbone.layers):
        layer.trainable = i >= cut


# --- the ensemble -------------------------------------------------------------------------
def ensemble_members_and_data(args):
    """Load the member detectors; take the data split from the first member's run (so the
    ensemble's test split is the members' test split), or split --data."""
    from training.data import load_left_out, load_split

    if not args.members:
        raise CLIError("--model ensemble needs --members RUN_A,RUN_B (run folders of trained members)")
    members = [m for p in args.members.split(",") if p.strip() for m in load_members(p.strip())]
    if len(members) < 2:
        raise CLIError("an ensemble needs at least two --members")
    first = Path(args.members.split(",")[0].strip().partition("#")[0])
    if (first / "split.json").exists():
        splits = load_split(first, args.data)
        data_root = str(Path(os.path.abspath(args.data))) if args.data else str(from_record(json.loads((first / "split.json").read_text())["data"]))
        summary = json.loads((first / "data.json").read_text()) if (first / "data.json").exists() else {}
        source, left_samples = load_left_out(first, args.data)
        if args.leave_out is not None and args.leave_out != source:
            raise CLIError(f"the first member, {first}, was trained " + (f"without {source}" if source else "on every source")
                           + f"; an ensemble takes its members' split, so --leave-out {args.leave_out} does not fit")
        print(f"using the split of {first} ({data_root})" + (f", without {source}" if source else ""))
        left = LeftOut(source, left_samples) if source else None
        return members, data_root, summary.get("layout"), summary, splits, left
    data_root, layout, summary, splits, left = read_and_split(args, Path(args.out or "."), resume=False)
    return members, data_root, layout, summary, splits, left


def load_members(spec: str) -> list:
    """The detectors that `spec` names: a run folder; an ensemble's folder (all its members);
    or ENSEMBLE#MEMBER, one member of an ensemble by architecture (e.g.
    models/bundled/ensemble#pretrained)."""
    from models.detector import Detector

    path, _, pick = spec.partition("#")
    members = unpack_ensemble(Detector.load(path))
    if not pick:
        return members
    chosen = [m for m in members if m.info.get("member_label") == pick] or [m for m in members if m.architecture == pick]
    if not chosen:
        raise CLIError(f"--members {spec}: {path} has no member {pick!r}; it has "
                       + ", ".join(m.info.get("member_label", m.architecture) for m in members))
    return chosen


def member_labels(members) -> list[str]:
    """A distinct name per member, as the server and the reports show them: its own label if
    it was unpacked from an ensemble, else its architecture, with how it was trained when that
    differs (tiny-sbi-only), and -2, -3 ... where two would read the same."""
    labels = []
    for m in members:
        sbi = ((m.info.get("training") or {}).get("args") or {}).get("sbi", "off")
        label = m.info.get("member_label") or (m.architecture + (f"-sbi-{sbi}" if sbi not in (None, "off") else ""))
        n = sum(1 for x in labels if x == label or x.startswith(label + "-") and x[len(label) + 1:].isdigit())
        labels.append(label if n == 0 else f"{label}-{n + 1}")
    return labels


def unpack_ensemble(detector) -> list:
    """The members of an ensemble detector, each as a detector of its own (so that a trained
    ensemble, e.g. the bundled one, can be restacked with a new member); any other detector
    as it is."""
    import keras

    from models.detector import Detector

    if detector.architecture != "ensemble":
        return [detector]
    nets = [layer for layer in detector.model.layers if isinstance(layer, keras.Model)]
    names = detector.info.get("members") or [net.name.replace("_", "-") for net in nets]
    archs = detector.info.get("member_architectures") or names
    return [Detector(net, arch, info={"name": name, "member_label": name}, path=detector.path)
            for net, name, arch in zip(nets, names, archs)]


def fit_ensemble(members, splits, settings: dict, args, run_dir: Path):
    """Freeze the members; fit only the logit-stacking weights, on the validation split, each
    image both as it is and web-degraded (half size, JPEG 60): the server judges images from
    the web, and the stack then leans on the members that hold up there (for the bundled
    ensemble: test mean AUC 0.802 -> 0.806, its drop on web-degraded copies 0.027 -> 0.019;
    on validation, clean 0.806 -> 0.794 and web-degraded 0.760 -> 0.769). Member scores are
    computed once, then the stack (a weight per member and a bias) is fitted on them; the
    same arithmetic as inside the ensemble, at a fraction of the cost."""
    import keras
    import numpy as np

    from models.architectures import LogitStack, build_ensemble
    from models.detector import Detector
    from training.augment import web_degrade
    from training.facecrops import face_crops
    from training.scoring import score_files

    nets, seen = [], set()
    for i, m in enumerate(members):
        net = m.model
        net.trainable = False
        if net.name in seen:  # two members of one architecture: layer names must differ
            net.name = f"{net.name}_{i}"
        seen.add(net.name)
        nets.append(net)
    model = build_ensemble(nets)
    if getattr(args, "stack", "fit") == "equal":  # LogitStack starts as the equal vote
        print(f"stacking: an equal vote of the {len(nets)} members in logit space (--stack equal)", flush=True)
        model.save(run_dir / "checkpoints" / "last.keras")
        write_state(run_dir, {**read_state(run_dir), "epoch": 0, "phase": "stacking"})
        return model, 0
    scorer = Detector(model, "ensemble")  # decodes and prepares files as at inference
    val = splits["val"]
    crops = face_crops([x.path for x in val])
    scores, labels = [], []
    for transform, desc in ((None, "members on validation"), (web_degrade, "members on web-degraded validation")):
        for s in score_files(scorer, [x.path for x in val], transform=transform, desc=desc, crops=crops):
            if s.error is None:  # files that no longer decode are left out
                scores.append(s.members)
                labels.append(val[s.index].label)
    if not scores:
        raise CLIError("no validation image could be read to fit the ensemble's stacking weights")
    scores, labels = np.stack(scores).astype("float32"), np.array(labels, dtype="float32")
    print(f"fitting the stacking weights on {len(labels)} validation images (clean and web-degraded)", flush=True)

    inputs = keras.Input((len(nets),))
    stack = keras.Model(inputs, LogitStack(len(nets), name="p_fake")(inputs))
    stack.compile(keras.optimizers.Adam(settings["lr"]), "binary_crossentropy",
                  metrics=[keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")])
    stack.fit(scores, labels, epochs=settings["epochs"], batch_size=settings["batch_size"], verbose=0,
              callbacks=[keras.callbacks.CSVLogger(run_dir / "history.csv")])
    model.get_layer("p_fake").set_weights(stack.get_layer("p_fake").get_weights())
    w, b = stack.get_layer("p_fake").get_weights()
    print("stacking weights: " + ", ".join(f"{name} {wi:.3f}" for name, wi in zip(member_labels(members), w)) + f", bias {float(b):.3f}")
    model.save(run_dir / "checkpoints" / "last.keras")
    write_state(run_dir, {**read_state(run_dir), "epoch": settings["epochs"], "phase": "stacking"})
    return model, settings["epochs"]


# --- after training -----------------------------------------------------------------------
def calibrate(detector, val_samples, args) -> None:
    """Temperature and thresholds on the validation split's face crops, the false-alarm bound
    per source of reals; the same code as `unmask calibrate` (training/calibrate.py)."""
    from training.calibrate import calibrate_detector

    calibrate_detector(detector, val_samples, args.target_precision, args.max_false_alarm)


def evaluate(run_dir: Path) -> None:
    try:
        from training.evaluate import evaluate_run
    except ImportError as e:
        if e.name != "training.evaluate":
            raise
        print(f"note: training/evaluate.py is not available; run `unmask evaluate {run_dir}` once it is")
        return
    evaluate_run(run_dir)


def evaluate_left_out(run_dir: Path) -> None:
    from training.evaluate import evaluate_left_out as score

    score(run_dir)
