"""Shortcut diagnostics: can a small classifier tell faces-v1's collections apart? (issue 17)

  python -m training.shortcuts --data ../shared/data/faces-v1 --out runs/shortcuts

If the real faces of one collection can be told from those of another, the collections carry
signatures of their own (framing, size, compression, camera) that a detector can learn
instead of the manipulation. This measures how easy that is, on the face crops the detectors
judge (training/facecrops.py: the same crop, resized by the contract to tiny's input), then
again after every crop went through the one processing chain that `unmask train
--same-chain` applies to every training image (training/augment.py: crop jitter, rescale
0.5-1 and back, JPEG 60-95; a fixed seed per image), to see how much of it the chain removes.

Features, each frozen (nothing is trained but a logistic regression):
- deep: MobileNet v2's pooled ImageNet features (models/backbones.py, ../shared/weights);
- signal: hand statistics of the pixels (high-frequency energy, 8-px blockiness, noise
  residual, colour);
- framing: where the face crop lies in the picture and how large it is (before only: a chain
  of pixels does not move the face box; the detector sees framing only through the pixels).
Tasks: the three real sources told apart (chance 1/3), and the reals of each real source
against the fakes of the fake-only sources (sd21, genphotos: no real counterpart; chance
1/2). Balanced accuracy of out-of-fold predictions, folds split by faces-v1's `group`, never
by file. Written to OUT/shortcuts.json, OUT/shortcuts.png and docs/results/shortcuts.json,
and the table of docs/EVALUATION.md made again from it (training/report.py).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

RESULTS = "docs/results/shortcuts.json"
FIGURE = "docs/figures/shortcuts.png"
REAL_SOURCES = ("dfdc", "stylegan1-ffhq", "yonsei-photoshop")
FAKE_ONLY = ("sd21", "genphotos")
ARCHITECTURE = "tiny"  # the crop is resized as this detector's input (the device's model)
BATCH = 32
FOLDS = 5
C = 0.1  # the logistic regression's inverse regularisation (fixed, not tuned)
SIGNAL_NAMES = ["laplacian_energy", "high_frequency_share", "blockiness_columns", "blockiness_rows", "residual_std",
                "residual_kurtosis", "residual_abs_mean", "saturation_mean",
                "mean_r", "mean_g", "mean_b", "std_r", "std_g", "std_b"]
FRAMING_NAMES = ["crop_side_share_of_short_side", "crop_centre_x", "crop_centre_y", "crop_side_px"]


# --- choosing the faces -----------------------------------------------------------------------
def choose(samples: list, per_cell: int, seed: int) -> list:
    """Up to `per_cell` samples of each (source, label) cell that the tasks use, taken as whole
    groups in a seeded order (training/data.subsample), sorted by path."""
    from training.data import subsample

    cells = defaultdict(list)
    for s in samples:
        if (s.source in REAL_SOURCES and s.label == 0) or (s.source in FAKE_ONLY and s.label == 1):
            cells[(s.source, s.label)].append(s)
    return sorted((s for key in sorted(cells) for s in subsample(cells[key], per_cell, seed)), key=lambda s: s.path)


# --- features ---------------------------------------------------------------------------------
def signal_features(x: np.ndarray) -> np.ndarray:
    """Hand statistics of one model input (float32 (S, S, 3), 0..255): what a detector could
    pick up without any manipulation. Order: SIGNAL_NAMES."""
    from scipy.ndimage import median_filter
    from scipy.stats import kurtosis

    x = np.asarray(x, np.float32)
    g = x.mean(axis=2)
    lap = 4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
    power = np.abs(np.fft.fftshift(np.fft.fft2(g - g.mean()))) ** 2
    n = g.shape[0]
    yy, xx = np.mgrid[:n, :n] - n // 2
    high = np.hypot(yy, xx) > n / 4  # above half the Nyquist frequency

    def blockiness(d):  # strength of an 8-px grid: the strongest phase of |differences| over their mean
        per_phase = np.array([d[:, p::8].mean() for p in range(8)])
        return float(per_phase.max() / (per_phase.mean() + 1e-6))

    residual = g - median_filter(g, size=3)
    mx, mn = x.max(axis=2), x.min(axis=2)
    saturation = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1e-6), 0)
    return np.array([
        np.abs(lap).mean(), power[high].sum() / (power.sum() + 1e-6),
        blockiness(np.abs(np.diff(g, axis=1))), blockiness(np.abs(np.diff(g, axis=0)).T),
        residual.std(), kurtosis(residual.ravel()), np.abs(residual).mean(), saturation.mean(),
        *x.mean(axis=(0, 1)), *x.std(axis=(0, 1)),
    ], np.float32)


def framing_features(crop, image_shape) -> np.ndarray:
    """Where the face crop (x, y, side) lies in the picture (h, w): FRAMING_NAMES."""
    h, w = image_shape[:2]
    x, y, side = crop
    return np.array([side / min(h, w), (x + side / 2) / w, (y + side / 2) / h, side], np.float32)


def extract(samples: list, crops: list, seed: int, progress: bool = True) -> dict:
    """{"deep", "signal"} before and after the chain (each (n, d)), and "framing" (n, 4).
    The chain's seed for image i is (seed, i): the same images get the same chain every run."""
    import tensorflow as tf
    from tqdm import tqdm

    from models.backbones import mobilenet_v2
    from models.preprocessing import input_spec, load_image, resize_for_model
    from training.augment import same_chain
    from training.facecrops import apply_crop

    size = input_spec(ARCHITECTURE).input_size
    net = mobilenet_v2(weights=True, input_size=size, pooling="avg")
    out = {k: [] for k in ("deep", "signal", "deep_chain", "signal_chain", "framing")}
    bar = tqdm(total=len(samples), unit="face", desc="features (before and after the chain)", disable=not progress)
    for start in range(0, len(samples), BATCH):
        before, after = [], []
        for i in range(start, min(start + BATCH, len(samples))):
            image = load_image(samples[i].path)
            out["framing"].append(framing_features(crops[i], image.shape))
            x = resize_for_model(apply_crop(image, crops[i]), size)
            before.append(x.numpy())
            after.append(same_chain(x, tf.constant([seed, i], tf.int64)).numpy())
        for name, batch in (("", before), ("_chain", after)):
            out["deep" + name].append(np.asarray(net.predict_on_batch(np.stack(batch))))
            out["signal" + name] += [signal_features(b) for b in batch]
        bar.update(len(before))
    bar.close()
    return {k: np.concatenate(v) if k.startswith("deep") else np.stack(v) for k, v in out.items()}


def cached_features(samples: list, crops: list, seed: int, cache: Path, progress: bool = True) -> tuple[dict, bool]:
    """(extract(), whether it came from `cache`), kept there keyed by the files, their crops, the seed and the chain."""
    from training.augment import SAME_CHAIN
    from training.facecrops import file_key

    key = hashlib.sha256(json.dumps([[file_key(s.path) for s in samples], crops, seed, repr(SAME_CHAIN), SIGNAL_NAMES],
                                    default=str).encode()).hexdigest()[:16]
    hit = cache / f"features-{key}.npz"
    cached = hit.exists()
    if not cached:
        features = extract(samples, crops, seed, progress)
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(hit, **features)
    with np.load(hit) as z:
        return {k: z[k] for k in z.files}, cached


# --- the classifier ---------------------------------------------------------------------------
def grouped_predictions(x: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int, folds: int = FOLDS) -> np.ndarray:
    """Out-of-fold class predictions of a standardised, class-balanced logistic regression;
    folds by group (stratified by class), so no group is in training and test at once."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pred = np.empty_like(y)
    for train, test in StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(x, y, groups):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=C, class_weight="balanced", max_iter=5000))
        model.fit(x[train], y[train])
        pred[test] = model.predict(x[test])
    return pred


def score(x, y, groups, n_classes: int, seed: int) -> dict:
    """Balanced accuracy and confusion matrix (rows: true class) of grouped out-of-fold predictions."""
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix

    pred = grouped_predictions(x, y, groups, seed)
    return {"balanced_accuracy": float(balanced_accuracy_score(y, pred)),
            "confusion": confusion_matrix(y, pred, labels=list(range(n_classes))).tolist()}


FEATURE_SETS = {  # name -> (features before, after the chain); None: not changed by the chain
    "pixels": (("deep", "signal"), ("deep_chain", "signal_chain")),
    "deep": (("deep",), ("deep_chain",)),
    "signal": (("signal",), ("signal_chain",)),
    "framing": (("framing",), None),
}


def run_task(features: dict, rows: np.ndarray, y: np.ndarray, groups: np.ndarray, n_classes: int, seed: int) -> dict:
    out = {}
    for name, (before, after) in FEATURE_SETS.items():
        res = {"before": score(np.hstack([features[k][rows] for k in before]), y, groups, n_classes, seed)}
        if after:
            res["after"] = score(np.hstack([features[k][rows] for k in after]), y, groups, n_classes, seed)
        out[name] = res
    return out


def tasks(samples: list, features: dict, seed: int) -> dict:
    """The three real sources apart; each real source's reals against the fake-only fakes."""
    source = np.array([s.source for s in samples])
    groups = np.array([s.group for s in samples])
    out = {}
    rows = np.flatnonzero(np.isin(source, REAL_SOURCES))
    y = np.array([REAL_SOURCES.index(s) for s in source[rows]])
    out["real-sources"] = {"classes": list(REAL_SOURCES), "chance": 1 / len(REAL_SOURCES),
                           "n": {s: int((source[rows] == s).sum()) for s in REAL_SOURCES},
                           "features": run_task(features, rows, y, groups[rows], len(REAL_SOURCES), seed)}
    for real in REAL_SOURCES:
        rows = np.flatnonzero(np.isin(source, (real, *FAKE_ONLY)))
        y = (source[rows] != real).astype(int)
        out[f"{real}-vs-fake-only"] = {"classes": [f"{real} real", "+".join(FAKE_ONLY) + " fake"], "chance": 0.5,
                                       "n": {real: int((y == 0).sum()), "+".join(FAKE_ONLY): int((y == 1).sum())},
                                       "features": run_task(features, rows, y, groups[rows], 2, seed)}
    return out


# --- reporting (the table is training/report.py's) ---------------------------------------------
def figure(r: dict, path: Path) -> Path:
    """The real-source confusion matrices on pixel features, before and after the chain."""
    from training.plots import confusions

    t = r["tasks"]["real-sources"]
    px = t["features"]["pixels"]
    return confusions([(f"{when} the chain: balanced accuracy {px[key]['balanced_accuracy']:.2f}", px[key]["confusion"])
                       for when, key in (("before", "before"), ("after", "after"))], path, t["classes"],
                      "Which real collection? (pixels of the face crop)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.shortcuts", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, type=Path, help="faces-v1 (a folder with manifest.csv)")
    p.add_argument("--out", required=True, type=Path, help="folder for shortcuts.json, shortcuts.png and the feature cache")
    p.add_argument("--per-source", type=int, default=400,
                   help="at most this many images of each real source's reals and each fake-only source's fakes "
                        "(whole groups, seeded; 0: all)")
    p.add_argument("--seed", type=int, default=1337, help="the choice of images, the folds and the chain")
    p.add_argument("--record", type=Path, default=Path(RESULTS),
                   help=f"results file to write (default {RESULTS}); docs/EVALUATION.md's table reads it")
    p.add_argument("--no-record", action="store_true", help="write OUT only (a trial run)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)

    from models.preprocessing import input_spec
    from models.tensorflow_import import import_tensorflow
    from training import report
    from training.data import DatasetError, load_dataset, recorded
    from training.facecrops import with_faces

    started = time.time()
    try:
        dataset = load_dataset(args.data, validate=False, progress=not args.quiet)
    except DatasetError as e:
        print(f"training.shortcuts: error: {e}", file=sys.stderr)
        return 2
    missing = sorted(set(REAL_SOURCES + FAKE_ONLY) - {s.source for s in dataset.samples})
    if missing:
        print(f"training.shortcuts: error: {args.data} has no {', '.join(missing)}: this diagnostic is for faces-v1",
              file=sys.stderr)
        return 2
    chosen = choose(dataset.samples, args.per_source, args.seed)
    samples, crops, no_face = with_faces(chosen, progress=not args.quiet)
    unreadable = [s for s, c in zip(samples, crops) if c is None]  # with_faces keeps these without a crop
    samples, crops = [s for s, c in zip(samples, crops) if c is not None], [c for c in crops if c is not None]
    import_tensorflow()
    features, cached = cached_features(samples, crops, args.seed, args.out / "cache", progress=not args.quiet)
    from training.augment import SAME_CHAIN

    command = f"python -m training.shortcuts --data {recorded(args.data)} --out {args.out}" + (
        f" --per-source {args.per_source}" if args.per_source != 400 else "") + (
        f" --seed {args.seed}" if args.seed != 1337 else "")
    results = {
        "about": "can a logistic regression on frozen features of the face crops tell faces-v1's collections apart? "
                 "Balanced accuracy of out-of-fold predictions, 5 folds by group.",
        "command": command, "data": recorded(args.data), "seed": args.seed, "per_source": args.per_source,
        "faces": len(samples), "no_face": len(no_face), "unreadable": len(unreadable),
        "input_size": input_spec(ARCHITECTURE).input_size,
        "chain": {"min_crop": SAME_CHAIN.min_crop, "min_scale": SAME_CHAIN.min_scale,
                  "jpeg_quality": list(SAME_CHAIN.jpeg_quality), "p": 1.0},
        "classifier": f"StandardScaler + LogisticRegression(C={C}, class_weight=balanced), {FOLDS} folds (StratifiedGroupKFold)",
        "features": {"deep": "MobileNet v2 (ImageNet, ../shared/weights) pooled, 1280", "signal": SIGNAL_NAMES,
                     "framing": FRAMING_NAMES},
        "tasks": tasks(samples, features, args.seed),
    }
    results["seconds"] = round(time.time() - started, 1)  # of this call: features from the cache cost little
    results["features_from_cache"] = cached
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "shortcuts.json").write_text(json.dumps(results, indent=1) + "\n")
    png = figure(results, args.out / "shortcuts.png")
    print("\n".join(report.shortcuts(results)))
    print(f"wrote {args.out / 'shortcuts.json'} and {png}")
    if not args.no_record:
        args.record.parent.mkdir(parents=True, exist_ok=True)
        args.record.write_text(json.dumps(results, indent=1) + "\n")
        figure_copy = report.REPO / FIGURE
        if args.record.resolve() == (report.REPO / RESULTS).resolve():
            shutil.copy(png, figure_copy)
            report.DOC.write_text(report.regenerate(report.DOC.read_text()))
            print(f"recorded {args.record} and {figure_copy}; made the tables of {report.DOC} again")
    return 0


if __name__ == "__main__":
    sys.exit(main())
