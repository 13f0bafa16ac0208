"""Rebuild the bundled models from a data folder, with a fixed seed, and publish their results.

  make models                      # = python -m training.bundle --data ../shared/data/faces-v1
  python -m training.bundle --data DIR [--runs runs/bundle] [--only tiny,ensemble] [--skip-trained]

Steps, each an `unmask` command printed before it runs (docs/EVALUATION.md quotes them):
1. train every detector on the same grouped split (seed 1337): tiny, seed-cnn, tuned-cnn,
   pretrained, then the ensemble of tuned-cnn and pretrained;
2. measure the cascade (tiny's uncertain verdicts escalated to the ensemble) on validation
   and test;
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
    state = run / "state.json"
    return state.exists() and json.loads(state.read_text()).get("done", False)


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
        sh(unmask(), "train", "--model", "ensemble", "--members", f"{out['tuned-cnn']},{out['pretrained']}",
           "--data", data, "--out", run, "--seed", SEED, "--no-evaluate", log=log)
    return out


def predictions(run: Path, split: str, data: Path) -> dict[str, tuple[float, int]]:
    """Calibrated p_fake and label per path, for one split, scored by the run's own detector."""
    from models.detector import Detector
    from training.data import load_split
    from training.predict import score_files

    det = Detector.load(run)
    samples = load_split(run, data)[split]
    out = {}
    for s in score_files(det, [x.path for x in samples], progress=True, desc=f"{det.name} on {split}"):
        if s.error is None:
            out[samples[s.index].path] = (float(det.calibration.calibrate(s.p_raw)), samples[s.index].label)
    return out


def measure_cascade(runs: dict, data: Path) -> dict:
    """The cascade as shipped: tiny's uncertain verdicts (between its calibrated thresholds,
    chosen for precision on validation) go to the ensemble. Measured on validation and test,
    with the curve of symmetric bands for comparison and the narrowest band that would meet
    the targets (within 1 point of the ensemble, at most 20% escalated)."""
    from models.detector import Detector
    from training import cascade

    cal = Detector.load(runs["tiny"]).calibration
    result = {"shipped_band": (cal.real_threshold, cal.fake_threshold)}
    for split in ("val", "test"):
        tiny, ens = predictions(runs["tiny"], split, data), predictions(runs["ensemble"], split, data)
        paths = sorted(set(tiny) & set(ens))
        pd = [tiny[p][0] for p in paths]
        ps = [ens[p][0] for p in paths]
        y = [tiny[p][1] for p in paths]
        points = cascade.cascade_curve(pd, ps, y)
        shipped = cascade.cascade_at(pd, ps, y, cal.real_threshold, cal.fake_threshold)
        result[split] = {"points": points, "ensemble_accuracy": points[-1].accuracy, "tiny_accuracy": points[0].accuracy,
                         "n": len(paths), "shipped": shipped}
    result["target_band"], result["target_met"] = cascade.choose_band(result["val"]["points"], result["val"]["ensemble_accuracy"])
    return result


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
    from training import cascade

    DOCS.mkdir(exist_ok=True)
    figs = DOCS / "figures"
    figs.mkdir(exist_ok=True)
    lines = ["# Evaluation", "",
             f"Every figure below was produced by `make models` (`python -m training.bundle --data {data}`), "
             "which ran the commands listed at the end. Test split: 10% of faces-v1 by group (seed 1337), "
             "never seen in training, calibration or model selection.", ""]
    sources = sorted({s for m in metrics.values() for s in m["clean"]["per_source"]})
    two = [s for s in sources if any(m["clean"]["per_source"].get(s, {}).get("roc_auc") is not None for m in metrics.values())]
    one = [s for s in sources if s not in two]

    lines += ["## ROC AUC per source (test split)", "",
              "| detector | parameters | " + " | ".join(two) + " | mean AUC | " + " | ".join(f"{s} fakes called fake" for s in one) + " | reals called real |",
              "|---|---:|" + "---:|" * (len(two) + 1 + len(one) + 1)]
    for name, m in metrics.items():
        ps = m["clean"]["per_source"]
        reals = [ps[s] for s in ps if ps[s]["n_real"]]
        n_real = sum(r["n_real"] for r in reals)
        real_ok = sum((r["real_verdict_rate_on_reals"] or 0) * r["n_real"] for r in reals) / n_real if n_real else None
        lines.append(f"| {name} | {m['clean']['model']['parameters']:,} | " +
                     " | ".join(_f(ps.get(s, {}).get("roc_auc")) for s in two) +
                     f" | **{_f(m['clean']['mean_auc_two_label_sources'])}** | " +
                     " | ".join(_f(ps.get(s, {}).get("fake_verdict_rate_on_fakes")) for s in one) + f" | {_f(real_ok)} |")
    lines += ["", "Rates for one-label sources use each detector's calibrated thresholds (uncertain counts as not called)."]
    missing = [n for n in [*TRAIN_ARGS, "ensemble"] if n not in metrics]
    if missing:
        lines += ["", f"Not trained in this build, so not in the tables: {', '.join(missing)}."]
    lines += [""]

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
        test, val = cascade_result["test"], cascade_result["val"]
        sh_t, sh_v, tb = test["shipped"], val["shipped"], cascade_result["target_band"]
        cascade.plot_curve(test["points"], test["tiny_accuracy"], test["ensemble_accuracy"], sh_t, figs / "cascade.png")
        gap = 100 * (test["ensemble_accuracy"] - sh_t.accuracy)
        lines += ["", "## The cascade: tiny on the device, its uncertain verdicts to the ensemble", "",
                  f"Shipped band: tiny's calibrated p(fake) between {max(sh_t.low, 0.0) + 0.0:.2f} and {sh_t.high:.2f} (its `uncertain` verdicts, "
                  "chosen for 90% precision on validation) is escalated.", "",
                  f"On the test split ({test['n']} images): tiny alone {100 * test['tiny_accuracy']:.1f}%, ensemble alone "
                  f"{100 * test['ensemble_accuracy']:.1f}% (accuracy at p = 0.5), cascade {100 * sh_t.accuracy:.1f}% with "
                  f"{100 * sh_t.escalated:.1f}% escalated (validation: {100 * sh_v.accuracy:.1f}% with {100 * sh_v.escalated:.1f}% escalated). "
                  f"Target (within 1 point of the ensemble, at most 20% escalated): "
                  f"{'met' if sh_t.escalated <= 0.2 and gap <= 1 else 'NOT met'}.", "",
                  f"For comparison, the narrowest symmetric band that meets the targets on validation is {tb.low:.2f} to {tb.high:.2f} "
                  f"({'met' if cascade_result['target_met'] else 'not met'}); it is not shipped when it is narrower than the "
                  "precision band, because then tiny's confident verdicts would fall short of their stated precision.", "",
                  "![cascade curve](figures/cascade.png)", "", cascade.markdown_table(test["points"])]
    lines += ["", "## Commands", "", "```sh", *log, "```", "",
              "Sizes and speeds of each model: see the benchmarks, bench/RESULTS.md (`make bench`)."]
    path = DOCS / "EVALUATION.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    metrics = evaluate_all(runs, args.data.resolve(), log)
    install(runs, args.data.resolve(), log)
    print(f"wrote {write_evaluation(runs, metrics, cascade_result, log, args.data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
