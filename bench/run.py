"""Run the benchmark suite and write its figures.

    python -m bench.run --out bench/results.json          # everything (make bench)
    python -m bench.run --smoke --out .tmp/smoke.json     # tiny and fast: the scripts still work (CI)
    python -m bench.run --only server --out /tmp/s.json   # one section or a few
    python -m bench.run --only models --update --out bench/results.json   # redo a section, keep the rest

Sections, in order: models, faces, training, server, soak, browser, tiny-backbones, video (see each module;
tiny-backbones, the candidate backbones and input sizes for `tiny`, and video, the extension's video
check in headed Chromium, run in the full run and, with --smoke, only when named by --only). The results JSON
names the machine (CPU, cores, memory from /proc), and each section its command, the load
average when it started (the machine may be shared), its duration and its figures; repeated
figures come as median, min and max with the number of runs. A Markdown table is written
next to the JSON (RESULTS.md beside results.json, else NAME.md). A section that fails is
recorded with its error, the others still run, and the exit status is 1. With --update, the
sections run replace theirs in an existing results file from the same machine (say, after a new
model ships); the others are kept as they were, each with its own command and start time.

The full run measures with images sampled from ../shared/data/faces-v1 when it is there
(--data DIR for another, --synthetic for generated ones); --smoke always uses generated ones.
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import shlex
import sys
import tempfile
import time
import traceback
from pathlib import Path

# section -> its module in bench/; each module's measure() takes (smoke, data, work), or the
# first ARGUMENTS[section] of them.
MODULES = {"models": "models", "faces": "faces", "face-recall": "face_recall", "face-stability": "face_stability",
           "training": "training", "server": "server_load", "soak": "soak", "browser": "browser",
           "tiny-backbones": "tiny_backbones", "video": "video", "provenance": "provenance", "scan": "scan"}
ARGUMENTS = {"models": 1, "faces": 2, "face-recall": 2, "face-stability": 2}
SECTIONS = tuple(MODULES)  # in the order they run and are reported
NOT_IN_SMOKE = ("tiny-backbones", "video", "face-recall", "face-stability", "scan")  # --smoke runs these only when --only names them


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _section(name: str, smoke: bool, data: Path | None, work: Path) -> dict:
    module = importlib.import_module(f"bench.{MODULES[name]}")  # imported only when run: each loads its own stack
    return module.measure(*(smoke, data, work)[:ARGUMENTS.get(name, 3)])


def parse_args(argv=None):
    from bench.common import DEFAULT_DATA

    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, metavar="FILE", help="results JSON to write (RESULTS.md or FILE.md beside it)")
    p.add_argument("--smoke", action="store_true", help="everything tiny and fast, to check that the scripts work")
    p.add_argument("--only", action="append", choices=SECTIONS, metavar="SECTION",
                   help=f"run only this section (repeat for more): {', '.join(SECTIONS)}")
    p.add_argument("--update", action="store_true",
                   help="replace only the sections run in the existing --out file (same machine, same --smoke)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--data", type=Path, metavar="DIR", help=f"labelled images with manifest.csv (default {DEFAULT_DATA} if present)")
    g.add_argument("--synthetic", action="store_true", help="measure with generated images only")
    args = p.parse_args(argv)
    if args.data is not None and args.smoke:
        p.error("--smoke always uses generated images; drop --data")
    if args.data is not None and not (args.data / "manifest.csv").is_file():
        p.error(f"--data {args.data}: no manifest.csv there")
    if args.smoke or args.synthetic:
        args.data = None
    elif args.data is None and (DEFAULT_DATA / "manifest.csv").is_file():
        args.data = DEFAULT_DATA
    out = Path(args.out)
    if out.is_dir():
        p.error(f"--out {out} is a folder; give a file name such as {out / 'results.json'}")
    if args.update and not out.is_file():
        p.error(f"--update: {out} does not exist yet; run without --update first")
    return args


def _refuse(message: str):
    print(f"python -m bench.run: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _previous(out: Path, smoke: bool, this_machine: dict) -> dict:
    """The results file that --update adds to, refused if it was made elsewhere or otherwise."""
    try:
        old = json.loads(out.read_text())
        sections = old["sections"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        _refuse(f"--update: {out} is not a results file ({e}); run without --update")
    same = ("cpu_model", "cores", "memory_gib")
    if any(old.get("machine", {}).get(k) != this_machine[k] for k in same):
        _refuse(f"--update: {out} was measured on another machine "
                f"({', '.join(str(old.get('machine', {}).get(k)) for k in same)}); run without --update")
    if bool(old.get("smoke")) != smoke:
        _refuse(f"--update: {out} is {'a smoke' if old.get('smoke') else 'a full'} run; match it or run without --update")
    return {**old, "sections": sections}


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from bench.common import BenchError, load_average, machine, markdown_path, say
    from bench.report import write_markdown

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    names = [s for s in SECTIONS if (s in args.only if args.only else not (args.smoke and s in NOT_IN_SMOKE))]
    flags = " --smoke" if args.smoke else (" --synthetic" if args.data is None else f" --data {shlex.quote(str(args.data))}")
    this_machine = machine()
    command = "python -m bench.run " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    previous = _previous(out, args.smoke, this_machine) if args.update else None
    results = {
        "suite": "unmask benchmarks (bench/)",
        "smoke": args.smoke,
        "command": command,
        "started": _now(),
        "machine": this_machine,
        "data": str(args.data) if args.data else "generated images (tests/synthetic.py)",
        "sections": {},
    }
    if previous:
        # Keep the earlier run's sections, in the suite's order, with this run's replacing theirs.
        results = {**previous, "machine": this_machine,
                   "updates": previous.get("updates", []) + [{"command": command, "started": results["started"], "sections": names}]}
        results["sections"] = {k: previous["sections"][k] for k in SECTIONS if k in previous["sections"]}
    failed = []
    with tempfile.TemporaryDirectory(prefix="unmask-bench-") as tmp:
        for name in names:
            work = Path(tmp) / name
            work.mkdir()
            entry = {"command": f"python -m bench.run{flags} --only {name} --out FILE",
                     "load_average_at_start": load_average(), "started": _now()}
            say(name, f"start (load average {entry['load_average_at_start']})")
            t0 = time.perf_counter()
            try:
                entry.update(_section(name, args.smoke, args.data, work))
                entry["status"] = "ok"
            except BenchError as e:
                entry.update(status="error", error=str(e))
            except Exception as e:  # a bug or an unexpected tool failure: keep the trace, run the rest
                traceback.print_exc()
                entry.update(status="error", error=f"{type(e).__name__}: {e}")
            entry["seconds"] = round(time.perf_counter() - t0, 1)
            entry["load_average_at_end"] = load_average()
            if entry["status"] != "ok":
                failed.append(name)
                say(name, f"FAILED: {entry['error']}")
            else:
                say(name, f"done in {entry['seconds']} s")
            results["sections"][name] = entry
            results["sections"] = {k: results["sections"][k] for k in SECTIONS if k in results["sections"]}
            results["finished"] = _now()
            out.write_text(json.dumps(results, indent=1) + "\n")  # after every section: a crash keeps the rest
    md = markdown_path(out)
    write_markdown(results, md)
    print(f"wrote {out} and {md}" + (f"; failed: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
