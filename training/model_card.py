"""MODEL_CARD.md: what a detector is, what it was trained on, how it was calibrated, how
well it did per source, and where it will fail. Written by `unmask evaluate` from the
detector's detector.json and the evaluation's metrics.json; every figure comes from those.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

SEED_CNN_NOTE = (
    "Our predecessors' summary of this network printed 31,509,377 parameters, but the layers "
    "they listed (256x256x3 input, Conv2D 32 3x3, MaxPool 2, Conv2D 64 3x3, MaxPool 2, Flatten, "
    "Dense 128, Dropout, Dense 1) give 31,509,697, which is what this model has. Their printed "
    "Dense row (31,489,856 parameters) cannot come from the 246,016-wide flattened input "
    "(62 x 62 x 64): that Dense layer has 246,016 x 128 + 128 = 31,490,176 parameters, and "
    "31,489,856 - 128 is not a multiple of 128, so no input width gives it. We built the layers "
    "as listed."
)

LIMITATIONS = [
    "Trained and tested on face crops. Whole scenes, several faces or small faces are outside "
    "what it has seen; `unmask check` crops the largest face from video frames, but images are "
    "scored on their centre square as they are.",
    "Some fake sources (such as sd21 and genphotos in faces-v1) have no real images from the same "
    "camera or studio, so the detector can learn \"studio portrait\" rather than \"fake\". Their "
    "detection rates say nothing about false alarms on similar real portraits.",
    "Generators and face-swap methods that are not in the training data may not be detected. The "
    "per-source table shows how uneven the results already are between known sources.",
    "Web copies are resized and recompressed; see the web-degraded evaluation "
    "(`unmask evaluate ... --degrade web`) for how much that costs.",
    "The confidence is calibrated on the validation split of the same collections. On other "
    "data it can be over-confident; `uncertain` means the detector should not be trusted either way.",
]


def _f(x, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def thresholds_text(fake_t: float, real_t: float) -> str:
    """The verdict rule in words; a threshold outside 0..1 means that verdict is never given
    (validation could not reach the target precision with it)."""
    fake = f"**fake** when calibrated p(fake) >= {fake_t:.3f}" if fake_t <= 1 else "**fake** never (target out of reach)"
    real = f"**real** when <= {real_t:.3f}" if real_t >= 0 else "**real** never (target out of reach)"
    return f"{fake}, {real}, otherwise **uncertain**"


def _table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def render(metrics: dict, info: dict, degraded: dict | None = None) -> str:
    """The card as Markdown. `info` is detector.json; `degraded` an optional second
    metrics dict from a web-degraded evaluation of the same images."""
    model, data, overall, cal = metrics["model"], metrics["data"], metrics["overall"], metrics["calibration"]
    training = info.get("training") or {}
    pre = info.get("preprocessing") or {}
    lines = [f"# Model card: {model['name']} ({model['architecture']})", ""]
    lines += [f"Version {model.get('version')}, {model.get('parameters', 0):,} parameters. "
              f"Card written {dt.date.today().isoformat()} by `unmask evaluate` from metrics.json.", ""]

    lines += ["## Model", ""]
    lines += [f"- Architecture: `{model['architecture']}`" + (f", members: {', '.join(info['members'])}" if info.get("members") else "")]
    if pre:
        lines += [f"- Input: {pre.get('input_size')}x{pre.get('input_size')} RGB, {pre.get('crop')} crop, "
                  f"{pre.get('resize')} resize, pixels 0..255 rescaled inside the model "
                  f"(x * {pre.get('scale'):.6g} {'-' if pre.get('offset', 0) < 0 else '+'} {abs(pre.get('offset', 0)):g}); "
                  "see models/preprocessing.json."]
    lines += ["- Output: p(fake), turned into a verdict (fake / real / uncertain) by the calibration below."]
    if model["architecture"] == "seed-cnn":
        lines += ["", "**Parameter count.** " + SEED_CNN_NOTE]
    lines += [""]

    lines += ["## Training", ""]
    if training:
        lines += [f"- Data: `{training.get('data')}` (layout {training.get('layout')}), seed {training.get('seed')}."]
        sizes = training.get("split_sizes") or {}
        if sizes:
            lines += ["- Split by group, 80/10/10: " + ", ".join(
                f"{k} {v.get('total')} ({v.get('real')} real, {v.get('fake')} fake)" for k, v in sizes.items()) + "."]
        skipped = training.get("skipped")
        if skipped:
            lines += ["- Skipped while reading: " + ", ".join(f"{n} {r}" for r, n in skipped.items()) + "."]
        settings = training.get("settings") or {}
        if settings:
            lines += ["- Settings: " + ", ".join(f"{k} {v}" for k, v in settings.items())
                      + f"; epochs run {training.get('epochs_run')}; backend {training.get('backend')}; "
                      f"{training.get('seconds')} s."]
        args = training.get("args") or {}
        if args:
            lines += [f"- Balance: {args.get('balance')}; augmentation with web degradations: "
                      f"{'off' if args.get('no_augment') else 'on'}."]
    else:
        lines += ["No training record in detector.json (a model saved outside `unmask train`)."]
    if metrics.get("plots", {}).get("training_curves"):
        lines += ["", f"![training curves]({metrics['plots']['training_curves']})"]
    lines += [""]

    lines += ["## Calibration", ""]
    if cal.get("fitted"):
        fo = cal.get("fitted_on") or {}
        lines += [f"Fitted on the validation split ({fo.get('n', 'n/a')} images): temperature "
                  f"{_f(cal['temperature'])}; the verdict is {thresholds_text(cal['fake_threshold'], cal['real_threshold'])}. "
                  f"The thresholds were chosen so that each confident verdict reaches a "
                  f"precision of {_f(cal['target_precision'], 2)} on validation"
                  + (f", and `fake` is said of at most {_pct(cal['max_false_alarm'])} of the real faces of every source there."
                     if cal.get("max_false_alarm") is not None else ".")]
    else:
        lines += ["**Not calibrated**: temperature 1 and thresholds at 0.5 (defaults). Confidences are raw "
                  "scores, not probabilities; calibrate before shipping (`unmask train` does it on validation)."]
    lines += ["", f"On this evaluation ({data['n_scored']} images):", ""]
    lines += _table(["", "value"], [
        ["ECE before calibration (raw)", _f(cal.get("ece_raw"))],
        ["ECE after calibration", _f(cal.get("ece_calibrated"))],
        ["precision of `fake` verdicts", _f(cal.get("precision_fake"))],
        ["precision of `real` verdicts", _f(cal.get("precision_real"))],
        ["coverage (confident verdicts)", _pct(cal.get("coverage"))],
        ["share uncertain", _pct(cal.get("share_uncertain"))],
    ])
    if metrics.get("plots", {}).get("reliability"):
        lines += ["", f"![reliability diagram]({metrics['plots']['reliability']})"]
    lines += [""]

    lines += ["## Results", ""]
    lines += [f"Evaluated on `{data['root']}`, {data['split']} split"
              + (f", degraded: {data['degrade']}" if data.get("degrade") else "")
              + f": {data['n_scored']} images ({data['n_real']} real, {data['n_fake']} fake)"
              + (f", {len(data['errors'])} unreadable and left out" if data.get("errors") else "") + "."]
    lines += ["", "Pooled, at p(fake) >= 0.5:", ""]
    lines += _table(["accuracy", "precision", "recall", "F1", "ROC AUC"],
                    [[_f(overall["accuracy"]), _f(overall["precision"]), _f(overall["recall"]), _f(overall["f1"]),
                      _f(overall["roc_auc"])]])
    lines += ["", "Per source. AUC only where a source has both labels; TPR/TNR at 0.5; "
              "`fake`/`real` verdict rates at the shipped thresholds:", ""]
    rows = []
    for name, s in metrics["per_source"].items():
        rows.append([name, s["n_real"], s["n_fake"], _f(s["roc_auc"]), _f(s["accuracy"]), _f(s["tpr"]), _f(s["tnr"]),
                     _pct(s["fake_verdict_rate_on_fakes"]), _pct(s["real_verdict_rate_on_reals"]), _pct(s["share_uncertain"])])
    lines += _table(["source", "real", "fake", "AUC", "accuracy", "TPR", "TNR", "fakes called fake", "reals called real",
                     "uncertain"], rows)
    m = metrics.get("mean_auc_two_label_sources")
    lines += ["", f"**Mean ROC AUC over the sources with both labels** "
              f"({', '.join(metrics.get('two_label_sources', [])) or 'none'}): **{_f(m)}**."]
    if metrics.get("members"):
        lines += ["", "Members of the ensemble on the same images (raw scores):", ""]
        lines += _table(["member", "ROC AUC", "mean AUC (two-label sources)"],
                        [[k, _f(v.get("roc_auc")), _f(v.get("mean_auc_two_label_sources"))] for k, v in metrics["members"].items()])
    if degraded:
        lines += ["", "Web-degraded copies of the same images (half size, then JPEG quality 60; "
                  f"`{degraded.get('command', '--degrade web')}`):", ""]

        def change(a, b):
            return None if a is None or b is None else b - a

        rows = []
        for name, s in degraded["per_source"].items():
            c = metrics["per_source"].get(name, {})
            rows.append([name, _f(c.get("roc_auc")), _f(s["roc_auc"]), _f(change(c.get("roc_auc"), s["roc_auc"])),
                         f"{_pct(c.get('fake_verdict_rate_on_fakes'))} -> {_pct(s['fake_verdict_rate_on_fakes'])}",
                         f"{_pct(c.get('real_verdict_rate_on_reals'))} -> {_pct(s['real_verdict_rate_on_reals'])}"])
        a, b = metrics.get("mean_auc_two_label_sources"), degraded.get("mean_auc_two_label_sources")
        rows.append(["**mean (two labels)**", _f(a), _f(b), _f(change(a, b)), "", ""])
        lines += _table(["source", "AUC clean", "AUC degraded", "change", "fakes called fake", "reals called real"], rows)
    plots = metrics.get("plots", {})
    pics = [(k, plots[k]) for k in ("roc", "confusion", "verdicts", "scores") if plots.get(k)]
    if pics:
        lines += [""] + [f"![{k}]({v})" for k, v in pics]
    lines += [""]

    lines += ["## Limitations", ""] + [f"- {t}" for t in LIMITATIONS] + [""]
    lines += ["## Reproduce", "", "```"]
    args = training.get("args") or {}
    if args.get("model"):
        flags = {f"--{k.replace('_', '-')}": v for k, v in (training.get("settings") or {}).items()}
        flags.update({"--balance": args.get("balance"), "--members": args.get("members"),
                      "--limit": args.get("limit") or None})
        lines += [f"unmask train --model {args['model']} --data {training.get('data')} --seed {training.get('seed')} "
                  + " ".join(f"{k} {v}" for k, v in flags.items() if v is not None)
                  + (" --no-augment" if args.get("no_augment") else "")]
    lines += [metrics.get("command", "unmask evaluate MODEL --data DIR"), "```", ""]
    return "\n".join(lines)


def write(path, metrics: dict, info: dict, degraded: dict | None = None) -> Path:
    path = Path(path)
    path.write_text(render(metrics, info, degraded))
    return path
