"""Rebuild the bundled models from a data folder, with a fixed seed, and publish their results.

  make models DATA=DIR             # = python -m training.bundle --data DIR (faces-v1: docs/data/faces-v1)
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
5. record the figures in docs/results/bundle.json, draw the PNGs, and make the tables of
   docs/EVALUATION.md again from them (training/report.py; the prose around them stays).
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from training.train import finished

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
    """Run one command from the repository; the log (docs/EVALUATION.md's Commands) names
    paths relative to the repository, as the records do, and `unmask` by name."""
    from training.data import recorded

    print(f"\n$ {shlex.join(str(c) for c in cmd)}", flush=True)
    if log is not None:
        log.append(shlex.join(recorded(c) if isinstance(c, Path) else "unmask" if c == unmask() else str(c) for c in cmd))
    subprocess.run([str(c) for c in cmd], check=True, cwd=REPO)


def unmask() -> str:
    exe = Path(sys.executable).with_name("unmask")
    return str(exe) if exe.exists() else "unmask"


def train_all(data: Path, runs: Path, only: set, skip_trained: bool, log: list) -> dict[str, Path]:
    out = {}
    for name, extra in TRAIN_ARGS.items():
        run = runs / name
        out[name] = run
        if name not in only or (skip_trained and finished(run)):
            continue
        sh(unmask(), "train", "--model", name, "--data", data, "--out", run, "--seed", SEED, "--no-evaluate", *extra, log=log)
    run = runs / "ensemble"
    out["ensemble"] = run
    if "ensemble" in only and not (skip_trained and finished(run)):
        sh(unmask(), "train", "--model", "ensemble", "--members", ",".join(str(out[m]) for m in ENSEMBLE_MEMBERS),
           "--data", data, "--out", run, "--seed", SEED, "--no-evaluate", log=log)
    return out


def predictions(run: Path, split: str, data: Path) -> dict[str, tuple[float, int]]:
    """Calibrated p_fake and label per path, for one split, scored by the run's own detector."""
    from models.detector import Detector
    from training.data import load_split
    from training.facecrops import with_faces
    from training.scoring import score_files

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


def write_evaluation(runs: dict, metrics: dict, cascade_result: dict | None, log: list, data: Path) -> Path:
    """Record this build's figures in docs/results/bundle.json, draw its figures into
    docs/figures/, then make the tables of docs/EVALUATION.md again from the results
    (training/report.py). The document's prose is written by hand and left as it is."""
    from training import report
    from training.data import recorded

    figs = DOCS / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    for name in metrics:
        png = runs[name] / "reliability.png"
        if png.exists():
            shutil.copy2(png, figs / f"reliability-{name}.png")
    if cascade_result:
        from training import cascade

        t = cascade_result["test"]
        cascade.plot_curve(t["points"], t["tiny_accuracy"], t["ensemble_accuracy"], t["shipped"], figs / "cascade.png")
    results = report.summarize(metrics, cascade_result, log, recorded(data))
    (REPO / report.BUNDLE).parent.mkdir(parents=True, exist_ok=True)
    (REPO / report.BUNDLE).write_text(json.dumps(results, indent=1) + "\n")
    path = DOCS / "EVALUATION.md"
    path.write_text(report.regenerate(path.read_text()))
    return path


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
