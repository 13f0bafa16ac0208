"""`unmask scan` against `unmask predict` on one folder: `python -m bench.run --only scan`.

Runs, as the user would (a fresh process each, the bundled tiny model): `unmask predict`,
then `unmask scan` on the local runner with 1 and with 2 worker processes, each into a new
output. Figures per run: wall seconds (start to exit, so the start of Python, TensorFlow and
each worker's model are in it), CPU seconds of the process tree, pictures per second. Targets
(issue 22): 2 workers at least 1.7x one worker; the pipeline's overhead on one worker at most
15% of `unmask predict`. Each recorded as met or not; on a shared machine the wall times
also wait for other people's jobs (see the load average).
"""
from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.common import ROOT, BenchError, image_set, load_average, say

SECTION = "scan"
TWO_WORKER_SPEEDUP = 1.7
ONE_WORKER_OVERHEAD = 0.15


def _run(cmd: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1):  # 1: some files were errors, which the folder has none of
        raise BenchError(f"{' '.join(cmd[2:5])} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2)}


def measure(smoke: bool, data: Path | None, work: Path) -> dict:
    n = 12 if smoke else 400
    folder = work / "scan" / "src"
    images = image_set(n, data, work / "scan" / "made")
    folder.mkdir(parents=True, exist_ok=True)
    for i, p in enumerate(images.paths):
        shutil.copyfile(p, folder / f"{i:05d}{p.suffix.lower()}")
    load = load_average()
    unmask = [sys.executable, "-m", "training.commands"]
    runs = {}
    say(SECTION, f"unmask predict on {n} pictures")
    runs["predict"] = _run(unmask + ["predict", "--model", "tiny", str(folder), "--out", str(work / "scan" / "predict.csv"), "--quiet"])
    for workers in (1, 2):
        say(SECTION, f"unmask scan on {n} pictures, {workers} worker process(es)")
        out = work / "scan" / f"out-{workers}"
        shutil.rmtree(out, ignore_errors=True)
        runs[f"scan_{workers}"] = _run(unmask + ["scan", str(folder), "--out", str(out), "--model", "tiny",
                                                 "--workers", str(workers), "--quiet"])
    for r in runs.values():
        r["pictures_per_s"] = round(n / r["wall_s"], 2)
    speedup = runs["scan_2"]["pictures_per_s"] / runs["scan_1"]["pictures_per_s"]
    overhead = runs["scan_1"]["wall_s"] / runs["predict"]["wall_s"] - 1
    return {"images": images.source, "pictures": n, "model": "tiny (bundled)", "load_average_at_start": load,
            "load_average_after": load_average(), "runs": runs,
            "targets": {"two_workers_speedup": {"target": TWO_WORKER_SPEEDUP, "value": round(speedup, 2),
                                                "met": speedup >= TWO_WORKER_SPEEDUP},
                        "one_worker_overhead": {"target": ONE_WORKER_OVERHEAD, "value": round(overhead, 3),
                                                "met": overhead <= ONE_WORKER_OVERHEAD}},
            "how": "each a fresh process, wall time from start to exit (Python, TensorFlow and the model's load included)"}


def markdown(sec: dict) -> list[str]:
    from bench.common import table

    lines = [f"Model: {sec['model']}. Images: {sec['images']}. Load average {sec['load_average_at_start']} at start, "
             f"{sec['load_average_after']} after; {sec['how']}.", ""]
    names = {"predict": "unmask predict", "scan_1": "unmask scan, 1 worker process", "scan_2": "unmask scan, 2 worker processes"}
    lines += table(["run", "wall s", "CPU s (process tree)", "pictures/s"],
                   [[names[k], r["wall_s"], r["cpu_s"], r["pictures_per_s"]] for k, r in sec["runs"].items()])
    t = sec["targets"]
    s, o = t["two_workers_speedup"], t["one_worker_overhead"]
    lines += [f"- 2 workers / 1 worker: {s['value']}x (target at least {s['target']}x): {'met' if s['met'] else 'NOT met'}",
              f"- scan on 1 worker against predict: {o['value'] * 100:+.1f}% wall time (target at most "
              f"+{o['target'] * 100:.0f}%): {'met' if o['met'] else 'NOT met'}", ""]
    return lines
