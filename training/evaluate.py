"""Evaluating a detector (`unmask evaluate`, training/commands/evaluate.py): metrics per source,
left-out figures, plots, metrics.json and the model card."""
from __future__ import annotations

import csv
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from training.data import from_record, recorded

THRESHOLD = 0.5  # the binary decision for accuracy/precision/recall: calibrated p(fake) >= 0.5
LEFT_OUT_FALSE_ALARM = 0.05  # left-out fakes are counted at the threshold that calls this share of known reals fake
# web: half size, then JPEG q60. faceN: each face crop shrunk as if the face were N px tall in
# its picture (training/augment.py face_size_degrade); 48 is the smallest face judged.
FACE_SIZES = (48, 64, 96, 128)
DEGRADATIONS = ("web", *(f"face{n}" for n in FACE_SIZES))


# --- metrics ----------------------------------------------------------------------------
def _auc(y, p):
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if len(set(np.asarray(y).tolist())) == 2 else None


def _rate(mask) -> float | None:
    return float(np.mean(mask)) if np.size(mask) else None


def compute_metrics(p_raw, labels, sources, calibration) -> dict:
    """Every number of the report from raw scores, labels (1 fake) and source names."""
    from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, precision_recall_fscore_support

    from models.calibration import expected_calibration_error, threshold_stats

    p_raw = np.asarray(p_raw, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    src = np.asarray(sources)
    p = calibration.calibrate(p_raw)
    pred = (p >= THRESHOLD).astype(np.int64)
    verdicts = np.asarray(calibration.verdicts(p_raw))
    precision, recall, f1, _ = precision_recall_fscore_support(y, pred, labels=[1], average=None, zero_division=0)
    overall = {
        "n": int(len(y)),
        "accuracy": float(accuracy_score(y, pred)),
        "precision": float(precision[0]),
        "recall": float(recall[0]),
        "f1": float(f1[0]),
        "roc_auc": _auc(y, p_raw),
        "threshold": THRESHOLD,
        "confusion_matrix": confusion_matrix(y, pred, labels=[0, 1]).tolist(),  # rows true real/fake
        "verdict_matrix": [[int(((y == t) & (verdicts == v)).sum()) for v in ("real", "uncertain", "fake")] for t in (0, 1)],
        "classification_report": classification_report(y, pred, labels=[0, 1], target_names=["real", "fake"],
                                                       output_dict=True, zero_division=0),
        "classification_report_text": classification_report(y, pred, labels=[0, 1], target_names=["real", "fake"],
                                                            zero_division=0, digits=3),
    }
    per_source = {}
    for name in sorted(set(src.tolist())):
        m = src == name
        ys, ps, vs = y[m], p[m], verdicts[m]
        reals, fakes = ys == 0, ys == 1
        per_source[name] = {
            "n": int(m.sum()),
            "n_real": int(reals.sum()),
            "n_fake": int(fakes.sum()),
            "roc_auc": _auc(ys, p_raw[m]),
            "accuracy": float(np.mean((ps >= THRESHOLD) == (ys == 1))),
            "tpr": _rate(ps[fakes] >= THRESHOLD),          # detection rate at 0.5
            "tnr": _rate(ps[reals] < THRESHOLD),           # true-negative rate at 0.5
            "fake_verdict_rate_on_fakes": _rate(vs[fakes] == "fake"),  # at the shipped threshold
            "real_verdict_rate_on_reals": _rate(vs[reals] == "real"),
            "false_fake_rate_on_reals": _rate(vs[reals] == "fake"),
            "share_uncertain": _rate(vs == "uncertain"),
        }
    two = [k for k, v in per_source.items() if v["roc_auc"] is not None]
    stats = threshold_stats(p, y, calibration.fake_threshold, calibration.real_threshold)
    target = calibration.target_precision

    def met(x):
        return None if x is None else bool(x >= target)

    cal = {
        "fitted": bool(calibration.fitted_on),
        "temperature": calibration.temperature,
        "fake_threshold": calibration.fake_threshold,
        "real_threshold": calibration.real_threshold,
        "target_precision": target,
        "max_false_alarm": calibration.max_false_alarm,
        "fitted_on": calibration.fitted_on,
        "ece_raw": expected_calibration_error(p_raw, y),
        "ece_calibrated": expected_calibration_error(p, y),
        "precision_fake": stats["precision_fake"],
        "precision_real": stats["precision_real"],
        "target_met_fake": met(stats["precision_fake"]),
        "target_met_real": met(stats["precision_real"]),
        "share_fake": stats["share_fake"],
        "share_real": stats["share_real"],
        "share_uncertain": stats["share_uncertain"],
        "coverage": 1.0 - stats["share_uncertain"],
    }
    return {
        "overall": overall,
        "per_source": per_source,
        "two_label_sources": two,
        "mean_auc_two_label_sources": float(np.mean([per_source[k]["roc_auc"] for k in two])) if two else None,
        "calibration": cal,
    }


def member_metrics(members: np.ndarray, names: list[str], labels, sources) -> dict:
    """Pooled and mean-per-source AUC of each ensemble member's own score."""
    y, src = np.asarray(labels), np.asarray(sources)
    out = {}
    for j, name in enumerate(names):
        s = members[:, j]
        aucs = [a for a in (_auc(y[src == k], s[src == k]) for k in sorted(set(src.tolist()))) if a is not None]
        out[name] = {"roc_auc": _auc(y, s), "mean_auc_two_label_sources": float(np.mean(aucs)) if aucs else None}
    return out


def threshold_at_false_alarm(p_reals, max_false_alarm: float = LEFT_OUT_FALSE_ALARM) -> float | None:
    """The lowest threshold t such that at most `max_false_alarm` of `p_reals` are >= t
    (a fake is called fake where p >= t); None without reals."""
    p = np.sort(np.asarray(p_reals, dtype=np.float64))[::-1]
    if not p.size:
        return None
    allowed = int(np.floor(max_false_alarm * p.size + 1e-9))  # reals that may be called fake
    if allowed >= p.size:
        return float(p[-1])
    return float(np.nextafter(p[allowed], np.inf))  # just above the first real that must not be called fake


def left_out_figures(p_raw, labels, sources, calibration, source: str, per_source: dict,
                     max_false_alarm: float = LEFT_OUT_FALSE_ALARM) -> dict:
    """The figures of a left-out source (never seen in training, calibration or model
    selection), from raw scores of its images and of the reference reals (every real of
    another source among the samples: the run's test-split reals). `per_source` is
    compute_metrics' (its shipped-threshold rates are reused).

    paired (real and fake images): the ROC AUC against its own reals is the figure;
    fake-only: the share of its fakes called fake at the threshold where at most
    `max_false_alarm` of the reference reals are called fake; also, for every kind, the
    shares at the shipped (calibrated) fake threshold, and per real source the share of its
    reals called fake at the shipped threshold (false alarms)."""
    p = np.asarray(p_raw, dtype=np.float64)
    y, src = np.asarray(labels), np.asarray(sources)
    mine = src == source
    ref = (~mine) & (y == 0)
    fakes, reals = p[mine & (y == 1)], p[mine & (y == 0)]
    kind = "paired" if fakes.size and reals.size else "fake-only" if fakes.size else "real-only"
    t = threshold_at_false_alarm(p[ref], max_false_alarm)
    own = per_source.get(source, {})
    at_t = None if t is None else {
        "threshold_raw": t,
        "threshold_calibrated": float(calibration.calibrate(t)),
        "reference_reals_called_fake": _rate(p[ref] >= t),
        "fakes_called_fake": _rate(fakes >= t),
        "reals_called_fake": _rate(reals >= t),
    }
    shipped = {
        "fake_threshold_calibrated": calibration.fake_threshold,
        "fakes_called_fake": own.get("fake_verdict_rate_on_fakes"),
        "reals_called_fake": own.get("false_fake_rate_on_reals"),
        "reference_reals_called_fake": _rate(np.asarray(calibration.verdicts(p[ref])) == "fake") if ref.any() else None,
    }
    if kind == "paired":
        figure, measure = own.get("roc_auc"), "roc_auc"
    elif kind == "fake-only":
        figure, measure = (at_t or {}).get("fakes_called_fake"), "fakes_called_fake_at_max_false_alarm"
    else:
        figure, measure = shipped["reals_called_fake"], "reals_called_fake_at_shipped_threshold"
    return {
        "source": source,
        "kind": kind,
        "n": int(mine.sum()), "n_real": int(reals.size), "n_fake": int(fakes.size),
        "measure": measure,
        "figure": figure,
        "roc_auc": own.get("roc_auc"),
        "max_false_alarm": max_false_alarm,
        "reference": {
            "what": "the real faces of the run's test split, from the sources it was trained on",
            "n": int(ref.sum()),
            "sources": sorted(set(src[ref].tolist())),
        },
        "at_max_false_alarm": at_t,
        "at_shipped_threshold": shipped,
        # Reals called fake at the shipped threshold, per real source (compute_metrics' false_fake_rate_on_reals).
        "false_alarms_per_real_source": {k: {"n_real": v["n_real"], "called_fake": v["false_fake_rate_on_reals"],
                                             "left_out": k == source}
                                         for k, v in per_source.items() if v["n_real"]},
    }


# --- plots ------------------------------------------------------------------------------
def make_plots(out_dir: Path, p_raw, labels, sources, calibration, metrics: dict, history_csv=None) -> dict:
    from sklearn.metrics import roc_curve

    from training import plots

    y, src = np.asarray(labels), np.asarray(sources)
    p = calibration.calibrate(p_raw)
    made = {}
    if history_csv and Path(history_csv).is_file():
        if plots.training_curves(history_csv, out_dir / "training_curves.png"):
            made["training_curves"] = "training_curves.png"
    curves = {}
    if metrics["overall"]["roc_auc"] is not None:
        fpr, tpr, _ = roc_curve(y, p_raw)
        curves["all sources"] = (fpr, tpr, metrics["overall"]["roc_auc"])
    for name in metrics["two_label_sources"]:
        m = src == name
        fpr, tpr, _ = roc_curve(y[m], p_raw[m])
        curves[name] = (fpr, tpr, metrics["per_source"][name]["roc_auc"])
    if curves:
        plots.roc(curves, out_dir / "roc.png", title="ROC, pooled and per source")
        made["roc"] = "roc.png"
    plots.confusion(metrics["overall"]["confusion_matrix"], out_dir / "confusion.png",
                    title=f"Confusion matrix at p(fake) >= {THRESHOLD}")
    made["confusion"] = "confusion.png"
    plots.confusion(metrics["overall"]["verdict_matrix"], out_dir / "verdicts.png",
                    col_labels=("real", "uncertain", "fake"), title="Verdicts at the shipped thresholds", xlabel="verdict")
    made["verdicts"] = "verdicts.png"
    cal = metrics["calibration"]
    plots.reliability(p_raw, p, y, out_dir / "reliability.png", ece_raw=cal["ece_raw"], ece_cal=cal["ece_calibrated"])
    made["reliability"] = "reliability.png"
    plots.score_histograms(p, y, src, out_dir / "scores.png", calibration.fake_threshold, calibration.real_threshold)
    made["scores"] = "scores.png"
    return made


# --- running it -------------------------------------------------------------------------
def web_transform(name: str | None):
    if name is None:
        return None
    if name == "web":
        from training.augment import web_degrade

        return web_degrade
    if name in DEGRADATIONS and name.startswith("face"):
        from functools import partial

        from training.augment import face_size_degrade

        return partial(face_size_degrade, face_px=int(name[len("face"):]))
    raise ValueError(f"unknown degradation {name!r}; known: {', '.join(DEGRADATIONS)}")


def evaluate_detector(detector, samples, out_dir, history_csv=None, *, degrade: str | None = None,
                      data_info: dict | None = None, batch_size: int = 32, progress: bool = True,
                      command: str | None = None, quiet: bool = False, left_out_source: str | None = None) -> dict:
    """Score `samples` (objects with path, label, source, group), compute every metric, and
    write metrics.json, predictions.csv, the PNGs and MODEL_CARD.md into `out_dir`.
    Unreadable files are left out and listed. Returns the metrics dict. With
    `left_out_source`, also the figures of that source against the other sources' reals
    (left_out_figures), under "left_out"."""
    from training.facecrops import with_faces
    from training.model_card import write as write_card
    from training.scoring import score_files

    samples = list(samples)
    if not samples:
        raise ValueError("nothing to evaluate: the sample list is empty")
    # Judged as inference judges them: the largest face's crop; pictures without a face are
    # counted per source and left out, as the product gives them no verdict.
    samples, crops, no_face = with_faces(samples, progress)
    if not samples:
        raise ValueError(f"no face was found in any of the {len(no_face)} images: Unmask judges faces")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    scored = list(score_files(detector, [s.path for s in samples], crops=crops, transform=web_transform(degrade), batch_size=batch_size,
                              progress=progress, desc=f"evaluating {detector.name}" + (f" ({degrade})" if degrade else "")))
    ok = [s for s in scored if s.error is None]
    errors = [{"path": samples[s.index].path, "reason": s.error_reason, "message": s.error} for s in scored if s.error]
    if not ok:
        raise ValueError(f"none of the {len(samples)} images could be read (first: {errors[0]['path']}: {errors[0]['message']})")
    used = [samples[s.index] for s in ok]
    p_raw = np.array([s.p_raw for s in ok])
    y = np.array([s.label for s in used])
    src = np.array([s.source for s in used])
    cal = detector.calibration
    metrics = {
        "model": {"name": detector.name, "architecture": detector.architecture, "version": detector.version,
                  "path": str(detector.path) if detector.path else None,
                  "parameters": int(detector.model.count_params())},
        "data": {**(data_info or {}), "degrade": degrade, "n_scored": len(ok), "n_real": int((y == 0).sum()),
                 "n_fake": int((y == 1).sum()), "errors": errors,
                 "no_face": {src: sum(s.source == src for s in no_face) for src in sorted({s.source for s in no_face})},
                 "no_face_files": [recorded(s.path) for s in no_face]},
        **compute_metrics(p_raw, y, src, cal),
    }
    metrics["data"].setdefault("root", "(samples)")
    metrics["data"].setdefault("split", "given")
    if left_out_source is not None:
        metrics["left_out"] = left_out_figures(p_raw, y, src, cal, left_out_source, metrics["per_source"])
    if ok[0].members is not None:
        names = detector.member_names or [f"member{j}" for j in range(len(ok[0].members))]
        metrics["members"] = member_metrics(np.stack([s.members for s in ok]), names, y, src)
    metrics["plots"] = make_plots(out_dir, p_raw, y, src, cal, metrics, history_csv)
    metrics["command"] = command or "unmask evaluate MODEL --data DIR"
    metrics["seconds"] = round(time.time() - started, 1)

    with open(out_dir / "predictions.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "source", "label", "p_fake_raw", "p_fake", "verdict", "error"])
        by_index = {s.index: s for s in scored}
        for i, sample in enumerate(samples):
            s = by_index[i]
            label = "fake" if sample.label == 1 else "real"
            if s.error:
                w.writerow([sample.path, sample.source, label, "", "", "error", f"{s.error_reason}: {s.error}"])
            else:
                v = cal.verdict(s.p_raw)
                w.writerow([sample.path, sample.source, label, f"{s.p_raw:.6f}", v["p_fake"], v["verdict"], ""])
    metrics["files"] = ["metrics.json", "predictions.csv", "MODEL_CARD.md"] + list(metrics["plots"].values())
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=_json_default))
    degraded = None
    if not degrade and (out_dir / "eval-test-web" / "metrics.json").is_file():
        degraded = json.loads((out_dir / "eval-test-web" / "metrics.json").read_text())  # from an earlier --degrade web
    write_card(out_dir / "MODEL_CARD.md", metrics, detector.info, degraded)
    if not quiet:
        print(format_report(metrics, out_dir))
    return metrics


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def format_report(m: dict, out_dir: Path) -> str:
    from training.model_card import thresholds_text
    def f(x):
        return "  n/a" if x is None else f"{x:.3f}"

    def pct(x):
        return "   n/a" if x is None else f"{100 * x:5.1f}%"

    o, c, d = m["overall"], m["calibration"], m["data"]
    split = d["split"] if not d.get("left_out_source") else (
        f"left-out: {d['left_out_source']} ({d['n_left_out']}) + the test split's reals ({d['n_reference_reals']})")
    lines = [f"{m['model']['name']} ({m['model']['architecture']}) on {d['root']} [{split}"
             + (f", degraded: {d['degrade']}" if d.get("degrade") else "") + f"]: {d['n_scored']} images"
             + (f", {len(d['errors'])} unreadable (listed in metrics.json)" if d["errors"] else ""),
             f"  accuracy {f(o['accuracy'])}  precision {f(o['precision'])}  recall {f(o['recall'])}  "
             f"F1 {f(o['f1'])}  ROC AUC {f(o['roc_auc'])}",
             "", o["classification_report_text"].rstrip(), "",
             f"  {'source':<20}{'real':>6}{'fake':>6}{'AUC':>7}{'acc':>7}{'TPR':>7}{'TNR':>7}"
             f"{'fake->fake':>12}{'real->real':>12}{'uncert.':>9}"]
    for name, s in m["per_source"].items():
        lines.append(f"  {name:<20}{s['n_real']:>6}{s['n_fake']:>6}{f(s['roc_auc']):>7}{f(s['accuracy']):>7}"
                     f"{f(s['tpr']):>7}{f(s['tnr']):>7}{pct(s['fake_verdict_rate_on_fakes']):>12}"
                     f"{pct(s['real_verdict_rate_on_reals']):>12}{pct(s['share_uncertain']):>9}")
    lines.append(f"  mean AUC over sources with both labels ({', '.join(m['two_label_sources']) or 'none'}): "
                 f"{f(m['mean_auc_two_label_sources'])}")
    rule = thresholds_text(c["fake_threshold"], c["real_threshold"]).replace("**", "").replace(" calibrated p(fake)", "")
    lines.append(f"  calibration{'' if c['fitted'] else ' (NOT fitted: defaults)'}: T {c['temperature']:.3f}, "
                 f"{rule}; ECE {c['ece_raw']:.3f} raw -> "
                 f"{c['ece_calibrated']:.3f} calibrated; precision fake {f(c['precision_fake'])}, real "
                 f"{f(c['precision_real'])} (target {c['target_precision']:.2f}); coverage {pct(c['coverage'])}, "
                 f"uncertain {pct(c['share_uncertain'])}")
    for name, s in (m.get("members") or {}).items():
        lines.append(f"  member {name}: AUC {f(s['roc_auc'])}, mean AUC (two-label sources) {f(s['mean_auc_two_label_sources'])}")
    if m.get("left_out"):
        lines += format_left_out(m["left_out"])
    lines.append(f"  wrote {', '.join(m['files'])} to {out_dir}")
    return "\n".join(lines)


def format_left_out(lo: dict) -> list[str]:
    def pct(x):
        return "n/a" if x is None else f"{100 * x:.1f}%"

    src, ref, t, sh = lo["source"], lo["reference"], lo["at_max_false_alarm"], lo["at_shipped_threshold"]
    what = {"paired": f"{lo['n_real']} real, {lo['n_fake']} fake", "fake-only": f"fake only, {lo['n_fake']} fakes",
            "real-only": f"real only, {lo['n_real']} reals"}[lo["kind"]]
    lines = ["", f"  left out: {src} ({what}), never seen in training, calibration or model selection"]
    if lo["kind"] == "paired":
        auc = lo["roc_auc"]
        lines.append(f"    ROC AUC against its own reals: {'n/a' if auc is None else f'{auc:.3f}'}")
    fa = f"{100 * lo['max_false_alarm']:g}%"
    ref_text = f"the {ref['n']} real faces of the run's test split, from the sources it was trained on ({', '.join(ref['sources'])})"
    if t is None:
        lines.append(f"    no real face in the run's test split, so no threshold at {fa} false alarms")
    elif lo["n_fake"]:
        lines.append(f"    {src} fakes called fake: {pct(t['fakes_called_fake'])} at the threshold where at most {fa} of the "
                     f"reals are called fake (raw p(fake) >= {t['threshold_raw']:.3f}, calibrated {t['threshold_calibrated']:.3f}; "
                     f"reals: {ref_text}; {pct(t['reference_reals_called_fake'])} of them called fake there)")
    if lo["n_fake"]:
        lines.append(f"    {src} fakes called fake at the shipped threshold (calibrated p(fake) >= "
                     f"{sh['fake_threshold_calibrated']:.3f}): {pct(sh['fakes_called_fake'])}")
    if lo["n_real"]:
        lines.append(f"    {src} reals called fake: {pct(sh['reals_called_fake'])} at the shipped threshold"
                     + (f", {pct(t['reals_called_fake'])} at the {fa} threshold" if t else ""))
    per = ", ".join(f"{k}{' (left out)' if v['left_out'] else ''} {pct(v['called_fake'])} of {v['n_real']}"
                    for k, v in lo["false_alarms_per_real_source"].items())
    lines.append(f"    false alarms (reals called fake at the shipped threshold) per real source: {per or 'none'}")
    return lines


def _split_counts(splits: dict) -> dict:
    return {k: {"total": len(v), "real": sum(s.label == 0 for s in v), "fake": sum(s.label == 1 for s in v)}
            for k, v in splits.items()}


def evaluate_run(run_dir, data_root=None, *, out_dir=None, degrade: str | None = None, batch_size: int = 32,
                 progress: bool = True) -> dict:
    """The run's test split (RUN_DIR/split.json), results into `out_dir` (default RUN_DIR)."""
    from models.detector import Detector
    from training.data import load_split

    run_dir = Path(run_dir)
    detector = Detector.load(run_dir)
    splits = load_split(run_dir, data_root)
    if not splits.get("test"):
        raise ValueError(f"the test split in {run_dir / 'split.json'} is empty; evaluate a folder with --split all")
    root = data_root or from_record(json.loads((run_dir / "split.json").read_text()).get("data"))
    cmd = ["unmask", "evaluate", str(run_dir)] + (["--data", recorded(data_root)] if data_root else []) + \
          (["--degrade", degrade] if degrade else [])
    return evaluate_detector(
        detector, splits["test"], out_dir or run_dir, history_csv=run_dir / "history.csv", degrade=degrade,
        data_info={"root": recorded(root), "split": "test", "splits": _split_counts(splits)}, batch_size=batch_size,
        progress=progress, command=shlex.join(cmd))


def evaluate_left_out(run_dir, data_root=None, *, out_dir=None, degrade: str | None = None, batch_size: int = 32,
                      progress: bool = True, quiet: bool = False) -> dict:
    """The source a run was trained without (split.json's left_out), scored beside the real
    faces of the run's test split; results into `out_dir` (default RUN_DIR/eval-left-out[-web])."""
    from models.detector import Detector
    from training.data import load_left_out, load_split

    run_dir = Path(run_dir)
    source, left = load_left_out(run_dir, data_root)
    if source is None:
        raise ValueError(f"{run_dir} was trained on every source: no left-out source is recorded in "
                         f"{run_dir / 'split.json'}; train with `unmask train --leave-out SOURCE`")
    if not left:
        raise ValueError(f"no left-out image of {source} is recorded in {run_dir / 'split.json'}")
    detector = Detector.load(run_dir)
    splits = load_split(run_dir, data_root)
    reals = [s for s in splits.get("test", []) if s.label == 0 and s.source != source]
    if not reals:
        print(f"note: the test split of {run_dir} holds no real face, so there is no {LEFT_OUT_FALSE_ALARM:.0%} "
              "false-alarm threshold to count the left-out fakes at", file=sys.stderr)
    root = data_root or from_record(json.loads((run_dir / "split.json").read_text()).get("data"))
    out_dir = Path(out_dir) if out_dir else run_dir / ("eval-left-out" + (f"-{degrade}" if degrade else ""))
    cmd = ["unmask", "evaluate", str(run_dir), "--split", "left-out"] + (["--data", recorded(data_root)] if data_root else []) + \
          (["--degrade", degrade] if degrade else [])
    return evaluate_detector(
        detector, left + reals, out_dir, history_csv=run_dir / "history.csv", degrade=degrade,
        data_info={"root": recorded(root), "split": "left-out",
                   "left_out_source": source, "n_left_out": len(left), "n_reference_reals": len(reals),
                   "splits": _split_counts(splits)},
        batch_size=batch_size, progress=progress, command=shlex.join(cmd), quiet=quiet, left_out_source=source)


def evaluate_folder(model, data_root, *, out_dir, degrade: str | None = None, batch_size: int = 32,
                    progress: bool = True) -> dict:
    """Every readable image of a data folder (training.data.load_dataset)."""
    from models.detector import Detector
    from training.data import load_dataset

    detector = Detector.load(model)
    ds = load_dataset(data_root, progress=progress)
    print(ds.format_summary(), file=sys.stderr)
    folder = detector.path if detector.path else Path(".")
    history = Path(folder) / "history.csv"
    cmd = ["unmask", "evaluate", str(model), "--data", recorded(data_root), "--split", "all"] + (["--degrade", degrade] if degrade else [])
    return evaluate_detector(
        detector, ds.samples, out_dir, history_csv=history if history.is_file() else None, degrade=degrade,
        data_info={"root": recorded(ds.root), "split": "all", "layout": ds.layout,
                   "skipped_while_reading": ds.summary().get("skipped")},
        batch_size=batch_size, progress=progress, command=shlex.join(cmd))


