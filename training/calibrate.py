"""Fitting a detector's calibration on its validation face crops (`unmask calibrate`,
training/commands/calibrate.py; `unmask train` fits it the same way)."""
from __future__ import annotations

import numpy as np

DEFAULT_MAX_FALSE_ALARM = 0.05  # as `unmask train --max-false-alarm`


def check_max_false_alarm(value: float) -> None:
    from training.commands import CLIError

    if not 0 <= value <= 1:
        raise CLIError(f"--max-false-alarm is the share of real images that may be called fake, from 0 to 1 "
                       f"(1 turns the bound off); got {value:g}")


def scored_samples(detector, samples, progress: bool = True):
    """(the samples judged, their raw p(fake), images without a face, unreadable files) over
    `samples`, judged on their face crops as `unmask evaluate` judges the test split."""
    from training.facecrops import with_faces
    from training.scoring import score_files

    samples, crops, no_face = with_faces(list(samples), progress)
    scored = list(score_files(detector, [s.path for s in samples], crops=crops, progress=progress,
                              desc=f"scoring validation ({detector.name})"))
    ok = [s for s in scored if s.error is None]
    errors = [samples[s.index].path for s in scored if s.error]
    return [samples[s.index] for s in ok], np.array([s.p_raw for s in ok], dtype=np.float64), no_face, errors


def validation_scores(detector, samples, progress: bool = True):
    """(raw p(fake), labels, sources, images without a face, unreadable files) over `samples`."""
    used, p, no_face, errors = scored_samples(detector, samples, progress)
    return (p, np.array([s.label for s in used], dtype=np.int64), np.array([s.source for s in used]), no_face, errors)


def calibrate_detector(detector, val_samples, target_precision: float, max_false_alarm: float,
                       progress: bool = True):
    """Fit the detector's calibration on `val_samples` (the validation split), save it into its
    detector.json, print what it does per source. Returns the Calibration."""
    from models.calibration import fit_calibration

    p, y, src, no_face, errors = validation_scores(detector, val_samples, progress)
    if not len(y):
        raise ValueError(f"none of the {len(val_samples)} validation images could be judged "
                         f"({len(no_face)} without a face, {len(errors)} unreadable)")
    cal = fit_calibration(p, y, target_precision, max_false_alarm, sources=src)
    detector.calibration = cal
    detector.save_info()
    for line in describe(cal, len(y), no_face, errors):
        print(line)
    return cal


def describe(cal, n: int, no_face=(), errors=()) -> list[str]:
    s = cal.fitted_on
    fake = f"fake if p >= {cal.fake_threshold:.3f}" if cal.fake_threshold <= 1 else "never fake"
    real = f"real if p <= {cal.real_threshold:.3f}" if cal.real_threshold >= 0 else "never real"
    bound = ("" if cal.max_false_alarm is None else
             f"; fake for at most {cal.max_false_alarm:.0%} of the reals of every source there")
    left = [f"{len(no_face)} without a face"] * bool(no_face) + [f"{len(errors)} unreadable"] * bool(errors)
    lines = [f"calibration on {n} validation images{' (' + ', '.join(left) + ' left out)' if left else ''}: "
             f"temperature {cal.temperature:.3f}; {fake}, {real} (each at precision >= {cal.target_precision:.2f} on "
             f"validation, or never given{bound}); uncertain share {s['share_uncertain']:.1%}"]
    per = s.get("false_alarm_per_source") or {}
    if per:
        lines.append("  reals called fake on validation: " + ", ".join(
            f"{k} {v['share']:.1%} ({v['called_fake']} of {v['n_real']}"
            + ("" if v["bounded"] or cal.min_source_reals is None else
               f"; under {cal.min_source_reals} reals: bounded with all reals pooled") + ")"
            for k, v in per.items()) + (f"; all reals {s['false_alarm']:.1%}" if s.get("false_alarm") is not None else ""))
    if n < 100:
        lines.append(f"warning: calibration from only {n} validation images is rough; train on more data")
    return lines


