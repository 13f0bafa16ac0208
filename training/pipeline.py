"""The tf.data input pipeline: samples -> batches of (float32 0..255 pixels, float32 labels).

Files are decoded with models.preprocessing.load_image (the same decoder inference uses:
EXIF orientation, first GIF frame) and resized with resize_for_model (the one contract),
in parallel, then augmented (training only), batched and prefetched.
Shuffling and augmentation are seeded, so a run repeats for a seed.
"""
from __future__ import annotations

import random
import sys
from collections import defaultdict

import numpy as np
import tensorflow as tf

from models.preprocessing import ImageError, load_image, resize_for_model
from training.augment import AugmentConfig, augment as augment_image
from training.data import Sample

AUTOTUNE = tf.data.AUTOTUNE
BALANCE_CHOICES = ("class-weight", "oversample", "none")


def oversample(samples: list[Sample], seed: int = 0) -> list[Sample]:
    """Repeat the rarer label's samples (cycling through a seeded permutation) until both
    labels are equally many. The order is set later by the pipeline's shuffle."""
    by_label = defaultdict(list)
    for s in sorted(samples, key=lambda s: s.path):
        by_label[s.label].append(s)
    if len(by_label) < 2:
        return list(samples)
    target = max(len(v) for v in by_label.values())
    rng = random.Random(seed)
    out = []
    for label in sorted(by_label):
        items = by_label[label]
        order = rng.sample(items, len(items))
        out += items + [order[i % len(order)] for i in range(target - len(items))]
    return out


def class_weights(samples: list[Sample]) -> dict[int, float]:
    """Keras class_weight so that each label carries half the loss: n / (2 * n_label)."""
    counts = np.bincount([s.label for s in samples], minlength=2)
    n = counts.sum()
    return {label: float(n / (2 * c)) if c else 0.0 for label, c in enumerate(counts)}


def _decode(path, crop):
    """Python side of the decode: path -> (RGB uint8 (H, W, 3), ok), cut to its face crop
    (x, y, side; side 0: the whole image). A file that fails now (it passed validation, so it
    changed since) gives a grey pixel and ok=False."""
    from training.facecrops import apply_crop

    path = path.decode() if isinstance(path, bytes) else str(path)
    try:
        image = load_image(path)
        return np.ascontiguousarray(apply_crop(image, tuple(int(v) for v in crop) if crop[2] else None)), np.bool_(True)
    except ImageError as e:
        print(f"warning: skipping {path} this epoch: {e}", file=sys.stderr, flush=True)
        return np.full((1, 1, 3), 128, np.uint8), np.bool_(False)


def load_and_resize(path, crop, input_size: int):
    """(pixels (size, size, 3) float32 0..255, ok) for one file path tensor and its crop."""
    image, ok = tf.numpy_function(_decode, [path, crop], [tf.uint8, tf.bool], stateful=False)
    image = tf.ensure_shape(image, [None, None, 3])
    return resize_for_model(image, input_size), tf.ensure_shape(ok, [])


def make_dataset(samples: list[Sample], input_size: int, batch_size: int, *, training: bool, augment: bool = True,
                 seed: int = 0, balance: str = "none", augment_config: AugmentConfig = AugmentConfig(),
                 class_weight: dict | None = None, with_weights: bool = False,
                 label_key: str | None = None, crops: list | None = None) -> tf.data.Dataset:
    """A tf.data.Dataset of (pixels (batch, size, size, 3) float32 0..255, labels (batch, 1)).

    training=True shuffles every epoch and, with augment, augments; balance="oversample"
    repeats the rarer label (training only). With class_weight or with_weights, batches are
    (pixels, labels, weights): the label's class weight (1 without class_weight), and 0 for a
    file that no longer decodes, so one bad file never stops training and the number of
    batches stays known (Keras shows a proper progress bar). Without, such files are dropped.
    label_key wraps labels as {label_key: y} for models with dict outputs (the ensemble).
    crops: each sample's face crop (x, y, side), as inference crops it (training/facecrops.py);
    without, whole images."""
    if not samples:
        raise ValueError("no samples to make a dataset from")
    if balance not in BALANCE_CHOICES:
        raise ValueError(f"balance must be one of {BALANCE_CHOICES}, not {balance!r}")
    crop_of = dict(zip((s.path for s in samples), crops)) if crops is not None else {}
    if training and balance == "oversample":
        samples = oversample(samples, seed)
    weighted = with_weights or class_weight is not None
    cw = class_weight or {0: 1.0, 1: 1.0}
    paths = tf.constant([s.path for s in samples])
    labels = tf.constant([[float(s.label)] for s in samples], tf.float32)
    weights = tf.constant([float(cw[s.label]) for s in samples], tf.float32)
    boxes = tf.constant([list(c) if isinstance(c := crop_of.get(s.path), tuple) else [0, 0, 0] for s in samples], tf.int32)
    ds = tf.data.Dataset.from_tensor_slices((paths, boxes, labels, weights))
    if training:
        ds = ds.shuffle(len(samples), seed=seed, reshuffle_each_iteration=True)

    def load(path, box, y, w):
        x, ok = load_and_resize(path, box, input_size)
        return x, y, w * tf.cast(ok, tf.float32)

    ds = ds.map(load, num_parallel_calls=AUTOTUNE)
    if not weighted:
        ds = ds.filter(lambda x, y, w: w > 0)
    if training and augment:
        # One [2] seed per image; a new sequence each epoch, the same sequences for a seed.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

        def augment_one(xyw, image_seed):
            x, y, w = xyw
            return augment_image(x, image_seed, augment_config), y, w

        ds = tf.data.Dataset.zip((ds, seeds)).map(augment_one, num_parallel_calls=AUTOTUNE)
    ds = ds.batch(batch_size)

    def arrange(x, y, w):
        y = {label_key: y} if label_key else y
        return (x, y, w) if weighted else (x, y)

    return ds.map(arrange).prefetch(AUTOTUNE)
