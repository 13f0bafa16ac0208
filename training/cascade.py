"""The product's cascade: `tiny` on the device, the uncertain band escalated to `ensemble`.

Given both models' calibrated p(fake) on the same labelled images, sweep symmetric bands
around the device's decision point and measure accuracy against the share escalated. The
band shipped is the narrowest that brings the cascade within `max_gap` of the ensemble's
accuracy while escalating at most `max_escalated` of images.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class CascadePoint:
    low: float  # device p_fake above this and below `high` is escalated
    high: float
    escalated: float  # share of images sent to the server
    accuracy: float


def cascade_curve(p_device, p_server, labels, center: float = 0.5, steps: int = 51) -> list[CascadePoint]:
    """Accuracy of the cascade for bands [center - w, center + w], w from 0 to 0.5."""
    return [cascade_at(p_device, p_server, labels, center - w, center + w) for w in np.linspace(0.0, 0.5, steps)]


def cascade_at(p_device, p_server, labels, low: float, high: float) -> CascadePoint:
    """The cascade escalating device scores strictly between `low` and `high`."""
    pd = np.asarray(p_device, dtype=np.float64)
    ps = np.asarray(p_server, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if not len(y):
        return CascadePoint(round(float(low), 4), round(float(high), 4), 0.0, float("nan"))
    escalate = (pd > low) & (pd < high)
    final = np.where(escalate, ps, pd)
    return CascadePoint(round(float(low), 4), round(float(high), 4), float(escalate.mean()), float(((final >= 0.5).astype(int) == y).mean()))


# The targets: within MAX_GAP of the server's accuracy, escalating at most MAX_ESCALATED.
MAX_GAP = 0.01
MAX_ESCALATED = 0.20


def meets_targets(point: CascadePoint, server_accuracy: float, max_gap: float = MAX_GAP,
                  max_escalated: float = MAX_ESCALATED) -> bool:
    return point.escalated <= max_escalated and point.accuracy >= server_accuracy - max_gap


def choose_band(points: list[CascadePoint], server_accuracy: float, max_gap: float = MAX_GAP,
                max_escalated: float = MAX_ESCALATED):
    """The narrowest band meeting both targets, else the most accurate band within the
    escalation budget (and `met` says which)."""
    within_budget = [p for p in points if p.escalated <= max_escalated]
    for p in sorted(within_budget, key=lambda p: p.escalated):
        if meets_targets(p, server_accuracy, max_gap, max_escalated):
            return p, True
    best = max(within_budget, key=lambda p: p.accuracy) if within_budget else points[0]
    return best, False


def plot_curve(points: list[CascadePoint], device_accuracy: float, server_accuracy: float, chosen: CascadePoint, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot([100 * p.escalated for p in points], [100 * p.accuracy for p in points], "-o", ms=3, label="cascade")
    ax.axhline(100 * server_accuracy, color="tab:green", ls="--", label="ensemble alone")
    ax.axhline(100 * device_accuracy, color="tab:red", ls=":", label="tiny alone")
    ax.axvline(20, color="grey", lw=0.8, ls="-.", label="20% escalation budget")
    ax.plot([100 * chosen.escalated], [100 * chosen.accuracy], "k*", ms=12, label=f"shipped band {max(chosen.low, 0.0) + 0.0:.2f}-{chosen.high:.2f}")
    ax.set_xlabel("images escalated to the server (%)")
    ax.set_ylabel("accuracy on the test split (%)")
    ax.set_title("tiny on the device, uncertain band to the ensemble")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def markdown_table(points: list[CascadePoint], every: int = 5) -> str:
    rows = ["| band (device p_fake) | escalated | accuracy |", "|---|---:|---:|"]
    for p in points[::every]:
        rows.append(f"| {p.low:.2f} to {p.high:.2f} | {100 * p.escalated:.1f}% | {100 * p.accuracy:.1f}% |")
    return "\n".join(rows)
