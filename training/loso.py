"""Leave one source out: for each source of the data in turn, train a detector without it and
judge it on that source. How a detector does on a source (a generator, a manipulation, a
camera) it has never seen is the figure that decides between recipes.

  python -m training.loso --data ../shared/data/faces-v1 [--model tiny] [--runs runs/loso]
  python -m training.bundle --loso [--only tiny] [--data DIR]      # the same protocol
  python -m training.loso --limit 2000 --epochs 1 --fine-tune-epochs 2   # a quick comparison

For each source S, in turn (each step an `unmask` command, printed before it runs):
1. `unmask train --model M --data DIR --leave-out S --out RUNS/M-without-S --seed 1337
   --no-evaluate [--limit N --epochs N ...]`: S goes into none of train/val/test (calibration
   is fitted on the validation split of the other sources). A run that finished is kept (as
   `training.bundle --skip-trained` does); one that stopped half-way is resumed.
2. `unmask evaluate RUNS/M-without-S --split left-out`: S's images beside the real faces of
   the run's test split (skipped when its results are newer than the run's detector). A
   source with real and fake images is measured by the ROC AUC against its own reals; a
   fake-only source by the share of its fakes called fake at the threshold where at most 5%
   of the test split's reals are called fake (and at the shipped threshold).

Written: RUNS/loso.md (per model a table, one row per left-out source, and the commands that
made it: to paste into docs/EVALUATION.md) and RUNS/loso.json (the figures). --limit applies
to the whole data before the source is left out, so a quick run also judges fewer images.
"""
from __future__ import annotations

import argparse
import gc
import json
import re
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "faces-v1"
SEED = 1337
EVAL_DIR = "eval-left-out"
# Knobs passed on to `unmask train` (argparse dest -> option); recorded per run and compared on reuse.
KNOBS = {"limit": "--limit", "epochs": "--epochs", "fine_tune_epochs": "--fine-tune-epochs",
         "batch_size": "--batch-size", "seed": "--seed"}
MEASURES = {"roc_auc": "ROC AUC against its own reals",
            "fakes_called_fake_at_max_false_alarm": "fakes called fake at {fa} false alarms",
            "reals_called_fake_at_shipped_threshold": "reals called fake at the shipped threshold"}


class LosoError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"the data folder (default {DEFAULT_DATA})")
    p.add_argument("--model", "--only", dest="model", default="tiny",
                   help="the architecture(s) to train, comma-separated (default tiny; not ensemble)")
    p.add_argument("--runs", type=Path, default=REPO / "runs" / "loso",
                   help="where the runs go, one per model and left-out source: RUNS/MODEL-without-SOURCE")
    p.add_argument("--sources", help="the sources to leave out, comma-separated (default: every source of the data)")
    p.add_argument("--out", type=Path, help="the Markdown table (default RUNS/loso.md; the JSON beside it, .json)")
    p.add_argument("--limit", type=int, default=0, help="unmask train --limit: about N images in all, for quick runs")
    p.add_argument("--epochs", type=int, help="unmask train --epochs (default per model)")
    p.add_argument("--fine-tune-epochs", type=int, help="unmask train --fine-tune-epochs (default per model)")
    p.add_argument("--batch-size", type=int, help="unmask train --batch-size (default per model)")
    p.add_argument("--seed", type=int, default=SEED, help=f"unmask train --seed (default {SEED})")
    p.add_argument("--train-args", default="", help="further `unmask train` options, one string, e.g. \"--no-augment\"")
    p.add_argument("--members", help="with --model ensemble: the members' runs per source, as comma-separated prefixes "
                                     "RUNS_DIR/MODEL (e.g. runs/loso/tiny,runs/loso-npr/npr): for source S the members are "
                                     "RUNS_DIR/MODEL-without-S, which must have finished; only the stacking is fitted")
    p.add_argument("--skip-trained", action="store_true", help="accepted for training.bundle; finished runs are always kept")
    return p


def main(argv=None, prog: str | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = prog or "python -m training.loso"
    args = build_parser(prog).parse_args(argv)
    try:
        report = run(args, invocation=shlex.join([*shlex.split(prog), *map(str, argv)]))
    except LosoError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    md, js = write_report(report, args.out or args.runs / "loso.md")
    print(f"\nwrote {md} and {js}")
    return 0


# --- the protocol -------------------------------------------------------------------------
def run_name(model: str, source: str) -> str:
    return f"{model}-without-{re.sub(r'[^A-Za-z0-9._-]+', '_', source)}"


def data_sources(data: Path) -> dict[str, dict[str, int]]:
    """Images per source and label, as listed (files are checked by `unmask train`)."""
    from training.data import load_dataset

    return load_dataset(data, validate=False, progress=False).summary()["counts"]


def finished(run: Path) -> bool:
    from training.train import finished as training_finished

    return (run / "model.keras").exists() and training_finished(run)


def train_argv(model: str, data, run: Path, source: str, args) -> list[str]:
    argv = ["train", "--model", model, "--data", data, "--leave-out", source, "--out", run, "--no-evaluate"]
    for dest, opt in KNOBS.items():
        value = getattr(args, dest)
        if value is not None and (dest != "limit" or value):
            argv += [opt, value]
    return [str(a) for a in argv + shlex.split(args.train_args)]


def ensemble_argv(run: Path, source: str, args) -> list[str]:
    """Stack the members trained without `source` (their split and left-out source come with them)."""
    members = []
    for prefix in (m.strip() for m in args.members.split(",") if m.strip()):
        folder, name = Path(prefix).parent, Path(prefix).name
        member = folder / run_name(name, source)
        if not finished(member):
            raise LosoError(f"the ensemble's member {member} has not finished: make it first with "
                            f"`python -m training.loso --model {name} --runs {folder}` (and the same options)")
        members.append(str(member))
    return ["train", "--model", "ensemble", "--members", ",".join(members), "--data", str(args.data), "--out", str(run),
            "--no-evaluate", *shlex.split(args.train_args)]


def evaluate_argv(run: Path) -> list[str]:
    return ["evaluate", str(run), "--split", "left-out", "--quiet"]


def unmask(argv: list[str], log: list[str]) -> None:
    """Run one `unmask` command in this process (TensorFlow loads once), logged as a shell line."""
    from training.commands import main as cli

    line = shlex.join(["unmask", *argv])
    print(f"\n$ {line}", flush=True)
    log.append(line)
    status = cli(argv)
    import keras

    keras.backend.clear_session()  # the next run starts from a clean graph
    gc.collect()
    if status:
        raise LosoError(f"`{line}` failed (exit status {status}); finished runs are kept, so run this again once fixed")


def trained_with(run: Path) -> dict:
    info = json.loads((run / "detector.json").read_text()).get("training") or {}
    recorded = info.get("args") or {}
    return {"leave_out": recorded.get("leave_out"), **{k: recorded.get(k) for k in KNOBS},
            "train_args": {k: v for k, v in recorded.items() if k not in KNOBS and k != "leave_out"},
            "settings": info.get("settings"), "epochs_run": info.get("epochs_run"), "seconds": info.get("seconds"),
            "split_sizes": info.get("split_sizes")}


def run(args, invocation: str) -> dict:
    from models.preprocessing import contract

    models = [m.strip() for m in args.model.split(",") if m.strip()]
    known = [m for m in contract()["models"] if m != "ensemble" or getattr(args, "members", None)]
    for m in models:
        if m not in known:
            raise LosoError(f"--model {m}: leave-one-source-out trains one of {', '.join(known)}"
                            + (" (an ensemble needs --members: the members' runs, trained without the same source)"
                               if m == "ensemble" else ""))
    if not args.data.is_dir():
        raise LosoError(f"no data folder at {args.data}; pass --data")
    counts = data_sources(args.data)
    listing = ", ".join(f"{s} ({c['real']} real, {c['fake']} fake)" for s, c in counts.items())
    if len(counts) < 2:
        raise LosoError(f"{args.data} holds one source only ({listing}): leaving it out leaves nothing to train on")
    sources = [s.strip() for s in args.sources.split(",") if s.strip()] if args.sources else list(counts)
    unknown = [s for s in sources if s not in counts]
    if unknown:
        raise LosoError(f"--sources: no source {', '.join(unknown)} in {args.data}; its sources are: {listing}")

    log: list[str] = []
    report = {"protocol": "leave one source out", "data": str(args.data), "command": invocation,
              "max_false_alarm": None, "knobs": {k: getattr(args, k) for k in KNOBS} | {"train_args": args.train_args},
              "sources_in_data": counts, "models": {}, "commands_run": log}
    for model in models:
        rows = {}
        for source in sources:
            rows[source] = one_source(model, source, args, log)
            report["max_false_alarm"] = rows[source]["max_false_alarm"]
        report["models"][model] = {"sources": rows, **summary(rows)}
    return report


def one_source(model: str, source: str, args, log: list[str]) -> dict:
    """Train (or keep, or resume) the run without `source`, evaluate it on `source`, and
    return its figures."""
    run = args.runs / run_name(model, source)
    train = ensemble_argv(run, source, args) if model == "ensemble" else train_argv(model, args.data, run, source, args)
    if finished(run):
        had = trained_with(run)
        if had["leave_out"] not in (None, source):
            raise LosoError(f"{run} was trained without {had['leave_out']}, not {source}; move it away")
        differs = [f"{KNOBS[k]} {had[k]} (asked {getattr(args, k)})" for k in KNOBS
                   if had.get(k) != getattr(args, k) and not (k == "limit" and not had.get(k) and not getattr(args, k))]
        print(f"\n{run} has finished: kept" + (f"; note: it was trained with {', '.join(differs)}: use another --runs "
                                                 "to compare recipes" if differs else ""), flush=True)
    elif (run / "checkpoints" / "last.keras").exists():
        unmask(train + ["--resume"], log)
    else:
        unmask(train, log)
    metrics_file = run / EVAL_DIR / "metrics.json"
    if not metrics_file.exists() or metrics_file.stat().st_mtime < (run / "detector.json").stat().st_mtime:
        unmask(evaluate_argv(run), log)
    else:
        print(f"{metrics_file} is newer than the run's detector: kept", flush=True)
    metrics = json.loads(metrics_file.read_text())
    figures = metrics["left_out"]
    return {**figures, "run": str(run), "model": model,
            "train_command": shlex.join(["unmask", *train]), "evaluate_command": shlex.join(["unmask", *evaluate_argv(run)]),
            "calibration": {k: metrics["calibration"][k] for k in ("temperature", "fake_threshold", "real_threshold")},
            "trained_with": trained_with(run)}


def summary(rows: dict) -> dict:
    def mean(xs):
        xs = [x for x in xs if x is not None]
        return sum(xs) / len(xs) if xs else None

    return {"mean_auc_paired": mean(r["roc_auc"] for r in rows.values() if r["kind"] == "paired"),
            "mean_fakes_called_fake_fake_only": mean(r["figure"] for r in rows.values() if r["kind"] == "fake-only")}


# --- the report ---------------------------------------------------------------------------
def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _value(row: dict) -> str:
    if row["figure"] is None:
        return "n/a"
    return f"{row['figure']:.3f}" if row["measure"] == "roc_auc" else _pct(row["figure"])


def markdown(report: dict) -> str:
    """Per model a table, one row per left-out source, then the commands."""
    fa = f"{100 * (report.get('max_false_alarm') or 0.05):g}%"
    knobs = report.get("knobs") or {}
    quick = ", ".join(f"{KNOBS[k]} {v}" for k, v in knobs.items() if k in KNOBS and v not in (None, 0) and k != "seed")
    lines = ["## Leave one source out", "",
             f"Each row: the detector trained without that source (seed {knobs.get('seed', SEED)}; calibration fitted on the "
             "validation split of the other sources), then judged on the face crops of the left-out source, which it "
             "never saw in training, calibration or model selection. A source with real and fake images: the ROC AUC "
             f"against its own reals. A fake-only source: the share of its fakes called fake at the threshold where at "
             f"most {fa} of the real faces of the run's test split (the sources it was trained on) are called fake. "
             "\"Shipped threshold\": the run's own calibrated fake threshold. False alarms: the share of a source's real "
             "faces called fake at the shipped threshold (test-split reals for the trained sources)."
             + (f" Quick run: {quick}." if quick or knobs.get("train_args") else "")
             + (f" Further training options: `{knobs['train_args']}`." if knobs.get("train_args") else ""), ""]
    for model, m in report["models"].items():
        lines += [f"### {model}", "",
                  "| left-out source | kind | n (real / fake) | measure | value | its fakes called fake at the shipped "
                  "threshold | its reals called fake at the shipped threshold | false alarms on the trained sources |",
                  "|---|---|---:|---|---:|---:|---:|---|"]
        for source, r in m["sources"].items():
            sh = r["at_shipped_threshold"]
            others = ", ".join(f"{k} {_pct(v['called_fake'])} (of {v['n_real']})"
                               for k, v in r["false_alarms_per_real_source"].items() if not v["left_out"]) or "n/a"
            lines.append(f"| {source} | {r['kind'].replace('-', ' ')} | {r['n_real']} / {r['n_fake']} | "
                         f"{MEASURES[r['measure']].format(fa=fa)} | **{_value(r)}** | "
                         f"{_pct(sh['fakes_called_fake']) if r['n_fake'] else '-'} | "
                         f"{_pct(sh['reals_called_fake']) if r['n_real'] else '-'} | {others} |")
        auc, share = m.get("mean_auc_paired"), m.get("mean_fakes_called_fake_fake_only")
        lines += ["", f"Mean ROC AUC over the paired sources left out: **{'n/a' if auc is None else f'{auc:.3f}'}**; "
                      f"mean share of the fake-only sources' fakes called fake at {fa} false alarms: **{_pct(share)}**.", ""]
    lines += ["Made by:", "", "```sh", report["command"], "```", "",
              "which runs, per left-out source (a finished run is kept, a stopped one resumed with `--resume`):", "",
              "```sh"]
    for m in report["models"].values():
        for r in m["sources"].values():
            lines += [r["train_command"], r["evaluate_command"]]
    lines += ["```", ""]
    return "\n".join(lines)


def write_report(report: dict, md_path) -> tuple[Path, Path]:
    md_path = Path(md_path)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(markdown(report))
    js = md_path.with_suffix(".json")
    js.write_text(json.dumps(report, indent=1, default=str) + "\n")
    return md_path, js


if __name__ == "__main__":
    sys.exit(main())
