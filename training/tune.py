"""A small random search for `tuned-cnn` (used by `unmask train --model tuned-cnn --tune N`).

Each trial builds the CNN with one choice of filters / dense width / dropout / learning rate,
trains it for a few epochs and scores it on the validation split (best val AUC). Trials are
written to RUN_DIR/tuning/trials.json as they finish, so an interrupted search resumes
where it stopped; the best configuration is then trained in full.
"""
from __future__ import annotations

import json
import random
import time
from pathlib import Path

SEARCH_SPACE = {
    "filters": [(16, 32, 64, 128), (24, 48, 96, 192), (32, 64, 128, 256), (16, 32, 64, 128, 192)],
    "dense": [64, 128, 256],
    "dropout": [0.2, 0.3, 0.5],
    "lr": [3e-4, 1e-3, 3e-3],
}
TRIALS_FILE = "trials.json"


def sample_configs(n: int, seed: int) -> list[dict]:
    """n distinct configurations, in a seeded order (the same for the same seed)."""
    rng = random.Random(seed)
    grid = [
        {"filters": list(f), "dense": d, "dropout": p, "lr": lr}
        for f in SEARCH_SPACE["filters"] for d in SEARCH_SPACE["dense"]
        for p in SEARCH_SPACE["dropout"] for lr in SEARCH_SPACE["lr"]
    ]
    return rng.sample(grid, min(n, len(grid)))


def search(train_ds, val_ds, n_trials: int, epochs: int, seed: int, out_dir: Path, prepare=lambda model: None) -> dict:
    """Run (or finish) the search; returns the best trial {"config", "val_auc", ...}.
    The datasets are those of training (pixels, labels, weights); prepare(model) readies each
    trial's model as training would (training/train.py passes its faster_batch_norm)."""
    import keras

    from models.architectures import build_tuned_cnn

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / TRIALS_FILE
    trials = json.loads(path.read_text()) if path.exists() else []
    configs = sample_configs(n_trials, seed)
    for i, config in enumerate(configs):
        if any(t["config"] == config for t in trials):
            continue  # done before an interruption
        print(f"tuning trial {i + 1}/{len(configs)}: {config}", flush=True)
        keras.utils.set_random_seed(seed + i)
        model = build_tuned_cnn(filters=tuple(config["filters"]), dense=config["dense"], dropout=config["dropout"])
        prepare(model)
        model.compile(keras.optimizers.Adam(config["lr"]), "binary_crossentropy",
                      weighted_metrics=[keras.metrics.AUC(name="auc")])
        start = time.time()
        history = model.fit(train_ds, validation_data=val_ds, epochs=epochs, shuffle=False, verbose=2)
        val_auc = [float(v) for v in history.history.get("val_auc", [])]
        trials.append({
            "trial": i + 1, "config": config, "epochs": epochs, "val_auc": max(val_auc) if val_auc else None,
            "val_auc_per_epoch": val_auc, "parameters": int(model.count_params()), "seconds": round(time.time() - start, 1),
        })
        path.write_text(json.dumps(trials, indent=1))
        keras.backend.clear_session()
    scored = [t for t in trials if t["val_auc"] is not None and any(t["config"] == c for c in configs)]
    if not scored:
        raise ValueError("no tuning trial produced a validation AUC; is the validation split empty?")
    best = max(scored, key=lambda t: (t["val_auc"], -t["trial"]))
    (out_dir / "best.json").write_text(json.dumps(best, indent=1))
    print(f"tuning: best of {len(scored)} trials is trial {best['trial']} (val AUC {best['val_auc']:.4f}): {best['config']}")
    return best
