"""Training: images per second through the input pipeline (training.pipeline.make_dataset:
decode, resize to the contract, augment, batch) and through one training step of `tiny` and
of `seed-cnn`, on the CPU.

The step is Keras's compiled train step (train_on_batch) on one batch already in memory,
with the model compiled as training/train.py compiles it; `tiny` is measured in both of its
phases (head only, backbone frozen; then fine-tuning the whole backbone).
"""
from __future__ import annotations

import time
from pathlib import Path

from bench.common import image_set, say, summary, timed

SECTION = "training"


def measure(smoke: bool, data: Path | None, work: Path) -> dict:
    images = image_set(16 if smoke else 256, data, work / "images")
    batch = 4 if smoke else 32
    return {
        "images": images.source,
        "pipeline": _pipeline(images, batch, runs=1 if smoke else 3),
        "train_step": _train_steps(batch, runs=1 if smoke else 10, warmup=1 if smoke else 2),
    }


def _pipeline(images, batch: int, runs: int) -> dict:
    from models.preprocessing import input_spec
    from training.data import Sample
    from training.pipeline import make_dataset

    samples = [Sample(str(p), y, "bench", f"g{i}") for i, (p, y) in enumerate(zip(images.paths, images.labels))]
    out = {"how": f"make_dataset(training=True, augment=True, batch_size={batch}) over {len(samples)} files, iterated to "
                  f"the end {runs} times after one untimed pass; images/s = files / seconds of one pass"}
    for model in ("tiny", "seed-cnn"):
        size = input_spec(model).input_size
        ds = make_dataset(samples, size, batch, training=True, augment=True, seed=0)

        def one_pass():
            n = 0
            for x, _ in ds:
                n += int(x.shape[0])
            if n != len(samples):
                raise RuntimeError(f"the pipeline gave {n} images of {len(samples)}")

        seconds = timed(one_pass, runs)
        out[f"{model} ({size}px)"] = summary([len(samples) / s for s in seconds], digits=1)
        say(SECTION, f"pipeline at {size}px: median {out[f'{model} ({size}px)']['median']:.0f} images/s")
    return out


def _train_steps(batch: int, runs: int, warmup: int) -> dict:
    import keras
    import numpy as np

    from models import architectures
    from models.preprocessing import input_spec
    from training.train import FINE_TUNE_FROM, compile_model, set_backbone_trainable

    out = {"how": f"model.train_on_batch on one in-memory batch of {batch} (random 0..255 pixels, labels 0/1, weights 1), "
                  f"compiled as training/train.py does (Adam, binary cross-entropy, weighted metrics); {runs} timed steps "
                  f"after {warmup} untimed one(s); images/s = batch / seconds per step",
           "batch_size": batch}
    rng = np.random.default_rng(0)
    cases = [
        ("tiny, head (backbone frozen)", "tiny", "head"),
        ("tiny, fine-tuning", "tiny", "fine-tune"),
        ("seed-cnn", "seed-cnn", None),
    ]
    for label, name, phase in cases:
        keras.utils.set_random_seed(0)
        # Weights do not change the time of a step; the shared ImageNet ones need not load.
        model = architectures.build_tiny(weights=None) if name == "tiny" else architectures.build_seed_cnn()
        if phase:
            set_backbone_trainable(model, phase == "fine-tune", FINE_TUNE_FROM["tiny"] if phase == "fine-tune" else None)
        compile_model(model, 1e-4)
        size = input_spec(name).input_size
        x = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
        y = (np.arange(batch) % 2).astype("float32")[:, None]
        w = np.ones(batch, "float32")
        t0 = time.perf_counter()
        seconds = timed(lambda: model.train_on_batch(x, y, sample_weight=w), runs, warmup=warmup)
        out[label] = {"images_per_s": summary([batch / s for s in seconds], digits=1),
                      "ms_per_step": summary([1000 * s for s in seconds], digits=1),
                      "trainable_parameters": int(sum(np.prod(v.shape) for v in model.trainable_weights))}
        say(SECTION, f"{label}: median {out[label]['images_per_s']['median']:.1f} images/s "
                     f"({time.perf_counter() - t0:.0f} s with warm-up)")
        del model
    return out
