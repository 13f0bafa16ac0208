"""From a raw p(fake) to a verdict with a confidence that means what it says.

A temperature is fitted on the validation split, so that calibrated probabilities match
observed frequencies. Two thresholds, also chosen on validation, cut the calibrated
probability into `real` / `uncertain` / `fake`, such that each confident verdict reaches
`target_precision` there, and `fake` is said of at most `max_false_alarm` of the real images
of every source (camera, collection) separately, not only of all reals pooled: a pooled bound
lets one kind of real photo be flagged far more often than the average says.
Precision depends on the share of fakes in the data; the false-alarm rate does not, and on the
web, where most images are real, it is what decides how often a real photo gets flagged.

The few-reals rule: a source with fewer than `min_source_reals` (20) real images in
validation is too small to bound alone (one real more or less moves its share by 5 points or
more, and at 5% none of them could ever be called fake), so its reals count only in the bound
on all reals pooled, which always applies as well. `fitted_on["false_alarm_per_source"]`
records, per source, its reals, how many were called fake, the share, and whether its own
bound applied.

extension/src/verdict.js applies the same rule in the browser: it reads only the temperature
and the two thresholds, so it needs no change when the way they are chosen changes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

EPS = 1e-6
VERDICTS = ("fake", "real", "uncertain")
MIN_SOURCE_REALS = 20  # fewer reals in a source: bounded with all reals pooled only (see above)


def logit(p):
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


@dataclass
class Calibration:
    temperature: float = 1.0
    fake_threshold: float = 0.5  # calibrated p >= this: fake
    real_threshold: float = 0.5  # calibrated p <= this: real
    target_precision: float = 0.9
    max_false_alarm: float | None = None  # share of real images that may be called fake
    # The bound held for every source with at least this many reals in validation (and for all
    # reals pooled); None: for all reals pooled only (detector.json files from before).
    min_source_reals: int | None = None
    # What the thresholds achieved where they were chosen (validation split).
    fitted_on: dict = field(default_factory=dict)

    def calibrate(self, p_raw):
        return sigmoid(logit(p_raw) / self.temperature)

    def verdict(self, p_raw: float) -> dict:
        p = float(self.calibrate(p_raw))
        if p >= self.fake_threshold:
            verdict = "fake"
        elif p <= self.real_threshold:
            verdict = "real"
        else:
            verdict = "uncertain"
        return {
            "verdict": verdict,
            # The calibrated probability that the likelier label is right.
            "confidence": round(max(p, 1 - p), 4),
            "p_fake": round(p, 4),
            "p_fake_raw": round(float(p_raw), 4),
        }

    def verdicts(self, p_raw) -> list[str]:
        p = self.calibrate(p_raw)
        return np.where(p >= self.fake_threshold, "fake", np.where(p <= self.real_threshold, "real", "uncertain")).tolist()

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "Calibration":
        if not d:
            return cls()
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


def fit_temperature(p_raw, labels) -> float:
    """The temperature that minimises the negative log-likelihood of `labels` (1 = fake)."""
    from scipy.optimize import minimize_scalar

    z = logit(p_raw)
    y = np.asarray(labels, dtype=np.float64)

    def nll(log_t):
        q = np.clip(sigmoid(z / np.exp(log_t)), EPS, 1 - EPS)
        return -np.mean(y * np.log(q) + (1 - y) * np.log(1 - q))

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(res.x))


def choose_thresholds(p_cal, labels, target_precision: float, max_false_alarm: float | None = None,
                      min_support: int = 5, sources=None,
                      min_source_reals: int = MIN_SOURCE_REALS) -> tuple[float, float, dict]:
    """Lowest fake threshold whose verdicts reach the target precision and call at most
    `max_false_alarm` of the reals fake, pooled and, given `sources` (each sample's source),
    of the reals of every source with at least `min_source_reals` of them; highest real
    threshold that reaches the precision.

    Where the target is out of reach, that verdict is never given (threshold 1.0 or 0.0),
    which is honest: the model then says `uncertain` instead."""
    p = np.asarray(p_cal, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    candidates = np.unique(np.concatenate([p, [0.5]]))
    reals = y == 0
    bounded = _bounded_sources(y, sources, min_source_reals) if max_false_alarm is not None else {}

    fake_t = 1.0 + EPS
    for t in candidates[candidates >= 0.5]:  # ascending: first hit is the widest band
        sel = p >= t
        false_alarm = sel[reals].mean() if reals.any() else 0.0
        if sel.sum() >= min_support and y[sel].mean() >= target_precision and (
                max_false_alarm is None or (false_alarm <= max_false_alarm and all(
                    sel[m].mean() <= max_false_alarm for m in bounded.values()))):
            fake_t = float(t)
            break
    real_t = -EPS
    for t in candidates[candidates <= 0.5][::-1]:  # descending
        sel = p <= t
        if sel.sum() >= min_support and (1 - y[sel]).mean() >= target_precision:
            real_t = float(t)
            break
    stats = threshold_stats(p, y, fake_t, real_t)
    if sources is not None:
        stats["false_alarm_per_source"] = false_alarms_per_source(
            p, y, sources, fake_t, min_source_reals if max_false_alarm is not None else None)
    return fake_t, real_t, stats


def _reals_by_source(labels, sources) -> dict:
    """source -> mask of its reals, for every source that has reals, in name order."""
    y = np.asarray(labels, dtype=np.int64)
    src = np.asarray(sources).astype(str)
    if len(src) != len(y):
        raise ValueError(f"{len(src)} sources for {len(y)} scores: give one source per sample")
    return {name: (src == name) & (y == 0) for name in sorted(set(src[y == 0].tolist()))}


def _bounded_sources(labels, sources, min_source_reals: int) -> dict:
    """source -> mask of its reals, for every source with at least `min_source_reals` reals."""
    if sources is None:
        return {}
    return {name: m for name, m in _reals_by_source(labels, sources).items() if m.sum() >= min_source_reals}


def false_alarms_per_source(p_cal, labels, sources, fake_t: float, min_source_reals: int | None = MIN_SOURCE_REALS) -> dict:
    """Per source with reals: {n_real, called_fake, share, bounded} at fake threshold `fake_t`;
    `bounded`: whether the source's own bound applied (at least `min_source_reals` reals;
    None: no per-source bound)."""
    p = np.asarray(p_cal, dtype=np.float64)
    out = {}
    for name, m in _reals_by_source(labels, sources).items():
        called = int((p[m] >= fake_t).sum())
        out[name] = {"n_real": int(m.sum()), "called_fake": called, "share": called / int(m.sum()),
                     "bounded": min_source_reals is not None and int(m.sum()) >= min_source_reals}
    return out


def threshold_stats(p_cal, labels, fake_t: float, real_t: float) -> dict:
    p = np.asarray(p_cal, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    fake = p >= fake_t
    real = p <= real_t
    n = max(len(p), 1)
    return {
        "n": int(len(p)),
        "precision_fake": float(y[fake].mean()) if fake.any() else None,
        "precision_real": float((1 - y[real]).mean()) if real.any() else None,
        "false_alarm": float(fake[y == 0].mean()) if (y == 0).any() else None,
        "share_fake": float(fake.sum() / n),
        "share_real": float(real.sum() / n),
        "share_uncertain": float(1 - (fake.sum() + real.sum()) / n),
    }


def fit_calibration(p_raw, labels, target_precision: float = 0.9, max_false_alarm: float | None = None,
                    sources=None, min_source_reals: int = MIN_SOURCE_REALS) -> Calibration:
    """Temperature and thresholds from validation scores. With `sources` (each sample's source),
    the false-alarm bound holds for every source's reals (the few-reals rule above), and
    fitted_on records each source's false alarms."""
    t = fit_temperature(p_raw, labels)
    per_source = sources is not None and max_false_alarm is not None
    cal = Calibration(temperature=t, target_precision=target_precision, max_false_alarm=max_false_alarm,
                      min_source_reals=min_source_reals if per_source else None)
    fake_t, real_t, stats = choose_thresholds(cal.calibrate(p_raw), labels, target_precision, max_false_alarm,
                                              sources=sources, min_source_reals=min_source_reals)
    cal.fake_threshold, cal.real_threshold = fake_t, real_t
    cal.fitted_on = stats
    return cal


def expected_calibration_error(p, labels, bins: int = 10) -> float:
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            ece += m.mean() * abs(p[m].mean() - y[m].mean())
    return float(ece)
