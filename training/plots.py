"""The evaluation's pictures, as PNG files (matplotlib, Agg backend: no display needed).

Each function takes plain numbers and a path, draws one figure and returns the path.
"""
from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

DPI = 110


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def read_history(history_csv) -> dict[str, list[float]]:
    """Keras CSVLogger output as columns of floats; rows in file order (a resumed or
    two-phase run appends, so `epoch` may start again from 0)."""
    with open(history_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    cols: dict[str, list[float]] = {}
    for row in rows:
        for k, v in row.items():
            try:
                cols.setdefault(k, []).append(float(v))
            except (TypeError, ValueError):
                cols.setdefault(k, []).append(float("nan"))
    return cols


def training_curves(history_csv, path) -> Path | None:
    """Accuracy and loss (and AUC when logged), training against validation, per epoch.
    Where the epoch count starts again (a new phase, e.g. fine-tuning), a dashed line."""
    h = read_history(history_csv)
    metrics = [m for m in ("accuracy", "loss", "auc") if m in h or f"val_{m}" in h]
    if not metrics or not any(len(v) for v in h.values()):
        return None
    n = max(len(v) for v in h.values())
    x = np.arange(1, n + 1)
    restarts = [i + 1 for i in range(1, n) if "epoch" in h and h["epoch"][i] <= h["epoch"][i - 1]]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        for key, style, label in ((m, "-o", "training"), (f"val_{m}", "-s", "validation")):
            if key in h:
                ax.plot(x, h[key], style, ms=3, label=label)
        for r in restarts:
            ax.axvline(r - 0.5, color="grey", ls="--", lw=0.8)
        ax.set_xlabel("epoch (cumulative)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(m)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def roc(curves: dict[str, tuple], path, title: str = "ROC") -> Path:
    """curves: name -> (fpr, tpr, auc). The first is drawn thick (the pooled curve)."""
    fig, ax = plt.subplots(figsize=(5, 5))
    for i, (name, (fpr, tpr, auc)) in enumerate(curves.items()):
        ax.plot(fpr, tpr, lw=2.5 if i == 0 else 1.3, label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
    ax.set_xlabel("false positive rate (reals called fake)")
    ax.set_ylabel("true positive rate (fakes caught)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _confusion_ax(ax, cm, row_labels, col_labels, title: str, xlabel: str) -> None:
    cm = np.asarray(cm, dtype=float)
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{int(cm[i, j])}\n{share[i, j]:.0%}", ha="center", va="center",
                    color="white" if share[i, j] > 0.6 else "black", fontsize=9)
    ax.set_xticks(range(cm.shape[1]), col_labels)
    ax.set_yticks(range(cm.shape[0]), row_labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("true label")
    ax.set_title(title, fontsize=10)


def confusion(cm, path, row_labels=("real", "fake"), col_labels=("real", "fake"), title: str = "Confusion matrix",
              xlabel: str = "predicted") -> Path:
    """A count matrix with each cell's share of its row, rows are the true labels."""
    n_rows, n_cols = np.shape(cm)
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * n_cols, 1.4 + 1.1 * n_rows))
    _confusion_ax(ax, cm, row_labels, col_labels, title, xlabel)
    return _save(fig, path)


def confusions(matrices: list, path, labels, title: str = "", xlabel: str = "predicted") -> Path:
    """Several (title, count matrix) side by side, one set of class labels, as `confusion` draws each."""
    n = np.shape(matrices[0][1])[0]
    fig, axes = plt.subplots(1, len(matrices), figsize=(len(matrices) * (2.2 + 1.3 * n), 1.8 + 1.1 * n), squeeze=False)
    for ax, (sub, cm) in zip(axes[0], matrices):
        _confusion_ax(ax, cm, labels, labels, sub, xlabel)
    if title:
        fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def reliability(p_raw, p_cal, labels, path, bins: int = 10, ece_raw: float | None = None,
                ece_cal: float | None = None) -> Path:
    """Observed share of fakes against predicted p(fake), per bin, raw and calibrated; the
    bars below count the images per bin (calibrated)."""
    y = np.asarray(labels, dtype=float)
    edges = np.linspace(0, 1, bins + 1)
    fig, (ax, axn) = plt.subplots(2, 1, figsize=(5, 6), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1, label="perfect")
    for p, name, ece, style in ((p_raw, "raw", ece_raw, "--o"), (p_cal, "calibrated", ece_cal, "-s")):
        p = np.asarray(p, dtype=float)
        idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
        xs, ys = [], []
        for b in range(bins):
            m = idx == b
            if m.any():
                xs.append(p[m].mean())
                ys.append(y[m].mean())
        label = name + (f" (ECE {ece:.3f})" if ece is not None else "")
        ax.plot(xs, ys, style, ms=4, label=label)
    ax.set_ylabel("observed share of fakes")
    ax.set_title("Reliability diagram")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    axn.hist(np.asarray(p_cal, dtype=float), bins=edges, color="tab:orange", alpha=0.8)
    axn.set_xlabel("predicted p(fake)")
    axn.set_ylabel("images")
    return _save(fig, path)


def score_histograms(p_cal, labels, sources, path, fake_threshold: float | None = None,
                     real_threshold: float | None = None) -> Path:
    """Calibrated p(fake) of reals and fakes, one panel per source, with the verdict
    thresholds: how well each source separates, at a glance."""
    p = np.asarray(p_cal, dtype=float)
    y = np.asarray(labels)
    src = np.asarray(sources)
    names = sorted(set(src.tolist()))
    cols = min(3, len(names))
    rows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    edges = np.linspace(0, 1, 26)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    for ax, name in zip(axes.ravel(), names):
        for label, colour, text in ((0, "tab:blue", "real"), (1, "tab:red", "fake")):
            m = (src == name) & (y == label)
            if m.any():
                ax.hist(p[m], bins=edges, alpha=0.6, color=colour, label=f"{text} ({int(m.sum())})")
        for t in (fake_threshold, real_threshold):
            if t is not None and 0 <= t <= 1:
                ax.axvline(t, color="black", ls="--", lw=0.8)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("calibrated p(fake)")
        ax.legend(fontsize=7)
    return _save(fig, path)
