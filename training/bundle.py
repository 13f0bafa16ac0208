"""Rebuild the bundled models from a data folder, with a fixed seed, and publish their results.

  make models                      # = python -m training.bundle --data ../shared/data/faces-v1
  python -m training.bundle --data DIR [--runs runs/bundle] [--only tiny,ensemble] [--skip-trained]
  python -m training.bundle --loso [--only tiny] [--data DIR] [--limit N --epochs N ...]   # training/loso.py

Steps, each an `unmask` command printed before it runs (docs/EVALUATION.md quotes them):
1. train every detector on the same grouped split (seed 1337): tiny, seed-cnn, tuned-cnn,
   pretrained, then the ensemble of tuned-cnn, pretrained and tiny (seed-cnn is too big for
   the server's 60 MB budget: 31.5M parameters);
2. measure the cascade (tiny's least certain images escalated to the ensemble): choose the
   escalation band on validation, measure it on test, record it in tiny's detector.json;
3. evaluate every detector on the test split, clean and web-degraded;
4. install tiny and ensemble into models/bundled/, convert tiny into extension/model/;
5. write docs/EVALUATION.md and its PNGs.
"""
from __future__ import annotations

import argparse
import csv
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SEED = 1337
# Every detector trained here; the predecessors' architectures are trained for the comparison only.
TRAIN_ARGS = {
    "tiny": [],
    "tuned-cnn": ["--tune", "3", "--tune-epochs", "1", "--epochs", "8"],
    "pretrained": [],
    "seed-cnn": ["--epochs", "4"],
}
ENSEMBLE_MEMBERS = ["pretrained", "tuned-cnn", "tiny"]  # the first member's split is the ensemble's
BUNDLED = {"tiny": REPO / "models" / "bundled" / "tiny", "ensemble": REPO / "models" / "bundled" / "ensemble"}
EXTENSION_MODEL = REPO / "extension" / "model"
DOCS = REPO / "docs"
# Files copied beside a bundled model: small, and what a reader of the card needs.
BUNDLE_FILES = ["model.keras", "detector.json", "MODEL_CARD.md", "metrics.json", "split.json", "history.csv"]


def sh(*cmd, log: list | None = None) -> None:
    line = shlex.join(str(c) for c in cmd)
    print(f"\n$ {line}", flush=True)
    if log is not None:
        log.append(line)
    subprocess.run([str(c) for c in cmd], check=True, cwd=REPO)


def unmask() -> str:
    exe = Path(sys.executable).with_name("unmask")
    return str(exe) if exe.exists() else "unmask"


def trained(run: Path) -> bool:
    """The run finished (`unmask train` marks checkpoints/state.json done once calibrated)."""
    for state in (run / "checkpoints" / "state.json", run / "state.json"):
        if state.exists() and json.loads(state.read_text()).get("done", False):
            return True
    return False


def train_all(data: Path, runs: Path, only: set, skip_trained: bool, log: list) -> dict[str, Path]:
    out = {}
    for name, extra in TRAIN_ARGS.items():
        run = runs / name
        out[name] = run
        if name not in only or (skip_trained and trained(run)):
            continue
        sh(unmask(), "train", "--model", name, "--data", data, "--out", run, "--seed", SEED, "--no-evaluate", *extra, log=log)
    run = runs / "ensemble"
    out["ensemble"] = run
    if "ensemble" in only and not (skip_trained and trained(run)):
        sh(unmask(), "train", "--model", "ensemble", "--members", ",".join(str(out[m]) for m in ENSEMBLE_MEMBERS),
           "--data", data, "--out", run, "--seed", SEED, "--no-evaluate", log=log)
    return out


def predictions(run: Path, split: str, data: Path) -> dict[str, tuple[float, int]]:
    """Calibrated p_fake and label per path, for one split, scored by the run's own detector."""
    from models.detector import Detector
    from training.data import load_split
    from training.facecrops import with_faces
    from training.predict import score_files

    det = Detector.load(run)
    samples, crops, _ = with_faces(load_split(run, data)[split])
    out = {}
    for s in score_files(det, [x.path for x in samples], progress=True, desc=f"{det.name} on {split}", crops=crops):
        if s.error is None:
            out[samples[s.index].path] = (float(det.calibration.calibrate(s.p_raw)), samples[s.index].label)
    return out


def measure_cascade(runs: dict, data: Path) -> dict:
    """The cascade: tiny's calibrated p(fake) inside a band goes to the ensemble. The band is
    chosen on validation (training/cascade.py: the narrowest within 1 point of the ensemble
    at <= 20% escalated, else the most accurate within the budget), then measured on test,
    beside tiny's own uncertain band (its precision thresholds) for comparison."""
    from models.detector import Detector

    cal = Detector.load(runs["tiny"]).calibration
    scored = {}
    for split in ("val", "test"):
        tiny, ens = predictions(runs["tiny"], split, data), predictions(runs["ensemble"], split, data)
        paths = sorted(set(tiny) & set(ens))
        scored[split] = ([tiny[p][0] for p in paths], [ens[p][0] for p in paths], [tiny[p][1] for p in paths])
    return summarize_cascade(scored, cal.real_threshold, cal.fake_threshold)


def summarize_cascade(scored: dict, real_threshold: float, fake_threshold: float) -> dict:
    """scored: split -> (tiny p, ensemble p, labels), calibrated, for "val" and "test"."""
    from training import cascade

    result = {}
    for split, (pd, ps, y) in scored.items():
        points = cascade.cascade_curve(pd, ps, y)
        result[split] = {"points": points, "ensemble_accuracy": points[-1].accuracy, "tiny_accuracy": points[0].accuracy,
                         "n": len(y), "uncertain_band": cascade.cascade_at(pd, ps, y, real_threshold, fake_threshold)}
    band, met = cascade.choose_band(result["val"]["points"], result["val"]["ensemble_accuracy"])
    result["band"], result["band_met_on_val"] = band, met
    for split, (pd, ps, y) in scored.items():
        result[split]["shipped"] = cascade.cascade_at(pd, ps, y, band.low, band.high)
    return result


def record_cascade(tiny_run: Path, ensemble_run: Path, result: dict) -> None:
    """Write the chosen escalation band into tiny's detector.json: `unmask convert` copies it
    into the extension's metadata.json, and the extension escalates by it."""
    from training import cascade

    info = json.loads((tiny_run / "detector.json").read_text())
    server = json.loads((ensemble_run / "detector.json").read_text())
    band = result["band"]
    figures = lambda split: {"accuracy": round(result[split]["shipped"].accuracy, 4),
                             "escalated": round(result[split]["shipped"].escalated, 4),
                             "tiny_accuracy": round(result[split]["tiny_accuracy"], 4),
                             "ensemble_accuracy": round(result[split]["ensemble_accuracy"], 4), "n": result[split]["n"]}
    info["cascade"] = {
        "escalate": {"above": band.low, "below": band.high},
        "doc": "a calibrated p_fake strictly inside (above, below) goes to the server model when the user allows it",
        "server_model": {"name": server.get("name", "ensemble"), "version": server.get("version")},
        "chosen_on": "validation", "targets": {"max_accuracy_gap": cascade.MAX_GAP, "max_escalated": cascade.MAX_ESCALATED},
        "targets_met_on_validation": bool(result["band_met_on_val"]),
        "validation": figures("val"), "test": figures("test"),
    }
    (tiny_run / "detector.json").write_text(json.dumps(info, indent=2) + "\n")


def evaluate_all(runs: dict, data: Path, log: list) -> dict[str, dict]:
    metrics = {}
    for name, run in runs.items():
        if not (run / "model.keras").exists():
            continue
        # Degraded first: the clean evaluation's model card then includes the degradation table.
        sh(unmask(), "evaluate", run, "--data", data, "--degrade", "web", "--out", run / "eval-test-web", "--quiet", log=log)
        sh(unmask(), "evaluate", run, "--data", data, "--quiet", log=log)
        metrics[name] = {"clean": json.loads((run / "metrics.json").read_text()),
                         "web": json.loads((run / "eval-test-web" / "metrics.json").read_text())}
    return metrics


def install(runs: dict, data: Path, log: list) -> None:
    for name, dest in BUNDLED.items():
        run = runs[name]
        if not (run / "model.keras").exists():
            continue
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        for f in BUNDLE_FILES:
            if (run / f).exists():
                shutil.copy2(run / f, dest / f)
        for png in run.glob("*.png"):
            shutil.copy2(png, dest / png.name)
    if (BUNDLED["tiny"] / "model.keras").exists():
        sh(unmask(), "convert", "tiny", "--out", EXTENSION_MODEL, "--quantize", "auto", "--data", data, log=log)


def _f(x, digits=3):
    return "n/a" if x is None else f"{x:.{digits}f}"


def write_evaluation(runs: dict, metrics: dict, cascade_result: dict | None, log: list, data: Path) -> Path:
    DOCS.mkdir(exist_ok=True)
    figs = DOCS / "figures"
    figs.mkdir(exist_ok=True)
    lines = ["# Evaluation", "",
             f"Every figure below was produced by the steps of `make models` (`python -m training.bundle --data {data}`): "
             "the commands listed at the end, then its cascade, install and report steps. Test split: 10% of faces-v1 "
             "by group (seed 1337), never seen in training, calibration or model selection.", ""]
    sources = sorted({s for m in metrics.values() for s in m["clean"]["per_source"]})
    two = [s for s in sources if any(m["clean"]["per_source"].get(s, {}).get("roc_auc") is not None for m in metrics.values())]
    one = [s for s in sources if s not in two]

    lines += ["## ROC AUC per source (test split)", "",
              "| detector | parameters | " + " | ".join(two) + " | mean AUC | " + " | ".join(f"{s} fakes called fake" for s in one) + " | reals not called fake | reals called real |",
              "|---|---:|" + "---:|" * (len(two) + 1 + len(one) + 2)]
    for name, m in metrics.items():
        ps = m["clean"]["per_source"]
        real_ok = rate_on_reals(ps, "real_verdict_rate_on_reals")
        tnr = true_negative_rate(ps)
        lines.append(f"| {name} | {m['clean']['model']['parameters']:,} | " +
                     " | ".join(_f(ps.get(s, {}).get("roc_auc")) for s in two) +
                     f" | **{_f(m['clean']['mean_auc_two_label_sources'])}** | " +
                     " | ".join(_f(ps.get(s, {}).get("fake_verdict_rate_on_fakes")) for s in one) + f" | {_f(tnr)} | {_f(real_ok)} |")
    lines += ["", "Rates use each detector's calibrated thresholds, as shipped: a fake counts as detected only when "
              "called `fake` (not `uncertain`). \"Reals not called fake\" is the true-negative rate at the fake threshold; "
              "\"reals called real\" asks for a confident `real`."]
    missing = [n for n in [*TRAIN_ARGS, "ensemble"] if n not in metrics]
    if missing:
        lines += ["", f"Not trained in this build, so not in the tables: {', '.join(missing)}."]
    lines += [""]

    lines += targets_section(metrics, cascade_result)
    lines += ["## Web-degraded copies (half size, then JPEG quality 60)", "",
              "| detector | mean AUC clean | mean AUC degraded | drop |", "|---|---:|---:|---:|"]
    for name, m in metrics.items():
        a, b = m["clean"]["mean_auc_two_label_sources"], m["web"]["mean_auc_two_label_sources"]
        lines.append(f"| {name} | {_f(a)} | {_f(b)} | {_f(None if a is None or b is None else a - b)} |")

    lines += ["", "## Calibration", "", "| detector | temperature | ECE raw | ECE calibrated | fake threshold | real threshold | "
              "precision of fake verdicts | precision of real verdicts | uncertain |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, m in metrics.items():
        c = m["clean"]["calibration"]
        lines.append(f"| {name} | {_f(c['temperature'], 2)} | {_f(c['ece_raw'])} | {_f(c['ece_calibrated'])} | {_f(c['fake_threshold'])} | "
                     f"{_f(c['real_threshold'])} | {_f(c['precision_fake'])} | {_f(c['precision_real'])} | {_f(c['share_uncertain'])} |")
    lines += [""]
    for name in metrics:
        png = runs[name] / "reliability.png"
        if png.exists():
            shutil.copy2(png, figs / f"reliability-{name}.png")
            lines.append(f"![reliability diagram of {name}](figures/reliability-{name}.png)")
    if cascade_result:
        lines += cascade_section(cascade_result, figs)
    lines += size_and_speed(REPO / "bench" / "results.json")
    lines += ["", "## Commands", "", "```sh", *log, "```"]
    path = DOCS / "EVALUATION.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def rate_on_reals(per_source: dict, key: str) -> float | None:
    """A per-source rate on real images (e.g. real_verdict_rate_on_reals), over every source with reals."""
    reals = [v for v in per_source.values() if v["n_real"]]
    n = sum(v["n_real"] for v in reals)
    return sum((v[key] or 0) * v["n_real"] for v in reals) / n if n else None


def true_negative_rate(per_source: dict) -> float | None:
    """Reals not called fake, over every source with reals."""
    called_fake = rate_on_reals(per_source, "false_fake_rate_on_reals")
    return None if called_fake is None else 1 - called_fake


def targets_section(metrics: dict, cascade_result: dict | None) -> list[str]:
    """The quality targets of the bundled models, each with the figure measured here."""
    rows = []

    def row(what, target, value, ok):
        rows.append(f"| {what} | {target} | {value} | {'met' if ok else '**NOT met**'} |")

    for name, goal in (("ensemble", 0.90), ("tiny", 0.85)):
        if name not in metrics:
            continue
        clean, web = metrics[name]["clean"], metrics[name]["web"]
        a, b = clean["mean_auc_two_label_sources"], web["mean_auc_two_label_sources"]
        row(f"{name}: mean AUC over dfdc, stylegan1-ffhq, yonsei-photoshop", f">= {goal:.2f}", _f(a), a >= goal)
        row(f"{name}: drop on web-degraded copies", "<= 0.02", _f(a - b), a - b <= 0.02)
        ps = clean["per_source"]
        for src in sorted(k for k, v in ps.items() if not v["n_real"]):
            rate = ps[src]["fake_verdict_rate_on_fakes"]
            row(f"{name}: {src} fakes called fake at the shipped threshold", ">= 0.95", _f(rate), rate >= 0.95)
        tnr = true_negative_rate(ps)
        row(f"{name}: reals not called fake at that threshold", ">= 0.90", _f(tnr), tnr is not None and tnr >= 0.90)
    if cascade_result:
        from training.cascade import MAX_ESCALATED, MAX_GAP

        t = cascade_result["test"]
        gap = t["ensemble_accuracy"] - t["shipped"].accuracy
        row("cascade: accuracy gap to the ensemble (test)", f"<= {100 * MAX_GAP:g} point", f"{100 * gap:.1f} points", gap <= MAX_GAP)
        row("cascade: share escalated (test)", f"<= {100 * MAX_ESCALATED:g}%", f"{100 * t['shipped'].escalated:.1f}%",
            t["shipped"].escalated <= MAX_ESCALATED)
    return ["## Against the targets", "", "| target | wanted | measured (test split) | |", "|---|---:|---:|---|", *rows, ""]


def cascade_section(result: dict, figs: Path) -> list[str]:
    from training import cascade

    test, val = result["test"], result["val"]
    band, sh_t, sh_v, unc = result["band"], test["shipped"], val["shipped"], test["uncertain_band"]
    cascade.plot_curve(test["points"], test["tiny_accuracy"], test["ensemble_accuracy"], sh_t, figs / "cascade.png")
    met = cascade.meets_targets(sh_t, test["ensemble_accuracy"])
    gap, budget = f"{100 * cascade.MAX_GAP:g} point", f"{100 * cascade.MAX_ESCALATED:g}%"
    return ["", "## The cascade: tiny on the device, its least certain images to the ensemble", "",
            f"Escalation band shipped: tiny's calibrated p(fake) strictly between {max(band.low, 0.0) + 0.0:.2f} and {band.high:.2f}, "
            f"chosen on validation as the narrowest symmetric band within {gap} of the ensemble's accuracy at <= {budget} escalated "
            f"({'found' if result['band_met_on_val'] else f'none exists, so the most accurate band within the {budget} budget'}). "
            "It is written into tiny's detector.json and the extension's metadata.json; the extension sends exactly these "
            "images to the server when the user allows second opinions (any other image on request).", "",
            f"On the test split ({test['n']} images), accuracy at p = 0.5: tiny alone {100 * test['tiny_accuracy']:.1f}%, ensemble alone "
            f"{100 * test['ensemble_accuracy']:.1f}%, cascade {100 * sh_t.accuracy:.1f}% with {100 * sh_t.escalated:.1f}% escalated "
            f"(validation: {100 * sh_v.accuracy:.1f}% with {100 * sh_v.escalated:.1f}%). Target (within {gap} of the ensemble, "
            f"at most {budget} escalated) on test: {'met' if met else 'NOT met'}.", "",
            f"For comparison, escalating all of tiny's `uncertain` verdicts (p between {max(unc.low, 0.0) + 0.0:.2f} and "
            f"{unc.high:.2f}, its calibrated thresholds) gives {100 * unc.accuracy:.1f}% with {100 * unc.escalated:.1f}% escalated.", "",
            "![cascade curve](figures/cascade.png)", "", cascade.markdown_table(test["points"])]


def size_and_speed(results: Path) -> list[str]:
    """The benchmark's figures for each model (bench/results.json), with the command that made them."""
    if not results.exists():
        return ["", "## Size and speed", "", "No benchmark results yet: run `make bench`."]
    bench = json.loads(results.read_text())
    models = bench["sections"].get("models", {})
    m = bench.get("machine", {})
    lines = ["", "## Size and speed", "",
             f"From `{models.get('command', 'make bench')}` ({models.get('started', '?')}, {m.get('cpu_model', '?')}, "
             f"{m.get('cores_usable', '?')} cores, load average at start {models.get('load_average_at_start', '?')}); "
             "median (min-max) of timed calls, TensorFlow on the CPU. Details and every other figure: "
             "[bench/RESULTS.md](../bench/RESULTS.md).", "",
             "| detector | input | parameters | model.keras | batch 1 (ms) | batch 32 (ms) | measured on |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for name, row in models.get("detectors", {}).items():
        t = row["ms_per_batch"]
        cells = [f"{t[b]['median']:.1f} ({t[b]['min']:.1f}-{t[b]['max']:.1f})" if b in t else "n/a" for b in ("1", "32")]
        kind = "the bundled model" if row["source"].startswith("bundled") else "the architecture, untrained weights"
        lines.append(f"| {name} | {row['input_size']} px | {row['parameters']:,} | {row['file_bytes'] / 1e6:.1f} MB | "
                     f"{cells[0]} | {cells[1]} | {kind} |")
    shipped = bench["sections"].get("browser", {}).get("models", {}).get("shipped")
    if shipped:
        inf = shipped["inference_ms"]
        lines += ["", f"In the browser (`{bench['sections']['browser']['command']}`): {shipped['model']}, "
                      f"{shipped['files']['total_bytes'] / 1024:.1f} KB, {shipped['input_size']} px, TF.js wasm in Chromium: "
                      f"{inf['median']} ms median per image (p95 {inf['p95']}, n={inf['runs']}); right-click to verdict "
                      f"{shipped['right_click_ms']['median']} ms median."]
    return lines


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--loso" in argv:  # leave one source out: training/loso.py, with its options (--only is its --model)
        from training import loso

        return loso.main([a for a in argv if a != "--loso"], prog="python -m training.bundle --loso")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--loso", action="store_true",
                   help="leave one source out instead (training/loso.py: its options, e.g. --only tiny --limit N)")
    p.add_argument("--data", required=True, type=Path, help="the data folder (faces-v1)")
    p.add_argument("--runs", type=Path, default=REPO / "runs" / "bundle", help="where the training runs go")
    p.add_argument("--only", default="tiny,tuned-cnn,pretrained,seed-cnn,ensemble", help="which detectors to (re)train")
    p.add_argument("--skip-trained", action="store_true", help="keep runs that already finished")
    args = p.parse_args(argv)
    if not args.data.is_dir():
        print(f"no data folder at {args.data}", file=sys.stderr)
        return 2
    log: list[str] = []
    runs = train_all(args.data.resolve(), args.runs.resolve(), set(args.only.split(",")), args.skip_trained, log)
    cascade_result = None
    if all((runs[n] / "model.keras").exists() for n in ("tiny", "ensemble")):
        cascade_result = measure_cascade(runs, args.data.resolve())
        record_cascade(runs["tiny"], runs["ensemble"], cascade_result)
    metrics = evaluate_all(runs, args.data.resolve(), log)
    install(runs, args.data.resolve(), log)
    print(f"wrote {write_evaluation(runs, metrics, cascade_result, log, args.data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
