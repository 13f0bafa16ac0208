"""`unmask scan` against `unmask predict` on one folder: `python -m bench.run --only scan`.

Runs, as the user would (a fresh process each, the bundled tiny model): `unmask predict`,
then `unmask scan` on the local runner with 1 and with 2 worker processes, each into a new
output. Every run gives TensorFlow the same threads: the cores split between 2 workers (1 on
a 2-core machine), by `--threads-per-worker` for the scans and TensorFlow's
TF_NUM_INTRAOP_THREADS / TF_NUM_INTEROP_THREADS for predict, which has no option of its own;
so 2 workers do not fight over the cores 1 worker already fills.

Figures per run: wall seconds (start to exit, so the start of Python, TensorFlow and each
worker's model are in it: what a user waits for), CPU seconds of the process tree, pictures
per second; for the scans also the steady rate from the scan's own metrics (pictures after
each worker's first batch over the window from the first batch finished to the last:
training/scan.py steady_state), which leaves the start-up out. Targets (issue 22): 2 workers
at least 1.7x one worker, on the steady rate; the pipeline's overhead on one worker at most
15% of `unmask predict`, on wall time. Each recorded as met or not; on a shared machine the
times also wait for other people's jobs (see the load average).
"""
from __future__ import annotations

import json
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


def _run(cmd: list[str], **extra_env) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2", **extra_env)
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


def _workers(workers: dict) -> dict:
    """Each worker's figures from the scan's metrics, its batches' finish times in seconds from
    the first batch finished by any worker (a late starter shows here)."""
    t0 = min(w["first_done_ms"] for w in workers.values())
    return {pid: {"pictures": w["pictures"], "first_batch": w["first_batch"], "batches": w["batches"], "tf_threads": w["tf_threads"],
                  "first_done_s": round((w["first_done_ms"] - t0) / 1000, 3), "last_done_s": round((w["last_done_ms"] - t0) / 1000, 3)}
            for pid, w in workers.items()}


def measure(smoke: bool, data: Path | None, work: Path) -> dict:
    from training.commands.scan import cores

    n = 12 if smoke else 1600  # the steady window must be long beside one batch and the start-up (at 400: about 3 s)
    folder = work / "scan" / "src"
    images = image_set(n, data, work / "scan" / "made")
    folder.mkdir(parents=True, exist_ok=True)
    for i, p in enumerate(images.paths):
        shutil.copyfile(p, folder / f"{i:05d}{p.suffix.lower()}")
    threads = max(1, cores() // 2)  # the 2-worker share, for every run
    load = load_average()
    unmask = [sys.executable, "-m", "training.commands"]
    runs = {}
    say(SECTION, f"unmask predict on {n} pictures, {threads} TensorFlow thread(s)")
    runs["predict"] = _run(unmask + ["predict", "--model", "tiny", str(folder), "--out", str(work / "scan" / "predict.csv"), "--quiet"],
                           TF_NUM_INTRAOP_THREADS=str(threads), TF_NUM_INTEROP_THREADS=str(threads))
    for workers in (1, 2):
        say(SECTION, f"unmask scan on {n} pictures, {workers} worker process(es), {threads} TensorFlow thread(s) each")
        out, metrics = work / "scan" / f"out-{workers}", work / "scan" / f"metrics-{workers}.json"
        shutil.rmtree(out, ignore_errors=True)
        metrics.unlink(missing_ok=True)
        runs[f"scan_{workers}"] = _run(unmask + ["scan", str(folder), "--out", str(out), "--model", "tiny", "--workers", str(workers),
                                                 "--threads-per-worker", str(threads), "--metrics", str(metrics), "--quiet"])
        m = json.loads(metrics.read_text())
        if m.get("pictures") != n:
            raise BenchError(f"unmask scan --workers {workers} checked {m.get('pictures')} of {n} pictures")
        runs[f"scan_{workers}"].update(
            steady_pictures_per_s=m["steady"]["pictures_per_s"], steady_pictures=m["steady"]["pictures"],
            steady_window_s=m["steady"]["window_s"],
            workers=_workers(m["workers"]))
    for r in runs.values():
        r["pictures_per_s"] = round(n / r["wall_s"], 2)
    steady = [runs[f"scan_{w}"]["steady_pictures_per_s"] for w in (1, 2)]
    speedup = steady[1] / steady[0] if all(steady) else None  # None: a worker had a single batch (tiny smoke runs)
    overhead = runs["scan_1"]["wall_s"] / runs["predict"]["wall_s"] - 1
    return {"images": images.source, "pictures": n, "model": "tiny (bundled)", "threads_per_worker": threads,
            "cores": cores(), "load_average_at_start": load, "load_average_after": load_average(), "runs": runs,
            "wall_speedup_two_workers": round(runs["scan_1"]["wall_s"] / runs["scan_2"]["wall_s"], 2),
            "targets": {"two_workers_speedup": {"target": TWO_WORKER_SPEEDUP, "on": "steady rate",
                                                "value": round(speedup, 2) if speedup else None,
                                                "met": speedup >= TWO_WORKER_SPEEDUP if speedup else None},
                        "one_worker_overhead": {"target": ONE_WORKER_OVERHEAD, "on": "wall time", "value": round(overhead, 3),
                                                "met": overhead <= ONE_WORKER_OVERHEAD}},
            "how": f"each a fresh process; wall time from start to exit (Python, TensorFlow and the model's load included); "
                   f"TensorFlow given {threads} intra-op and inter-op thread(s) per process ({cores()} cores): the scans by "
                   f"--threads-per-worker, predict by TF_NUM_INTRAOP_THREADS/TF_NUM_INTEROP_THREADS (it has no option); predict "
                   f"also decodes on 2 threads beside the model, the scan decodes in each worker's own thread; "
                   f"steady rate: pictures after each worker's first batch / (last batch finished - first batch finished)"}


def markdown(sec: dict) -> list[str]:
    from bench.common import table

    threads = f" TensorFlow threads per process: {sec['threads_per_worker']} ({sec['cores']} cores)." if "threads_per_worker" in sec else ""
    lines = [f"Model: {sec['model']}. Images: {sec['images']}. Load average {sec['load_average_at_start']} at start, "
             f"{sec['load_average_after']} after.{threads} How: {sec['how']}.", ""]
    names = {"predict": "unmask predict", "scan_1": "unmask scan, 1 worker process", "scan_2": "unmask scan, 2 worker processes"}
    lines += table(["run", "wall s", "CPU s (process tree)", "pictures/s (wall)", "pictures/s (steady)", "steady window s"],
                   [[names[k], r["wall_s"], r["cpu_s"], r["pictures_per_s"], r.get("steady_pictures_per_s") or "-",
                     r.get("steady_window_s", "-")] for k, r in sec["runs"].items()])
    t = sec["targets"]
    s, o = t["two_workers_speedup"], t["one_worker_overhead"]
    verdict = {True: "met", False: "NOT met", None: "not measured (a worker finished a single batch)"}
    if "wall_speedup_two_workers" in sec:
        lines += [f"- 2 workers / 1 worker, end to end (wall): {sec['wall_speedup_two_workers']}x"]
        # A worker that starts late stretches the steady window (the rate errs low): shown here.
        workers = sec["runs"]["scan_2"]["workers"].values()
        lines += [f"- 2 workers: pictures {', '.join(str(w['pictures']) for w in workers)}; first batch finished at "
                  f"{', '.join(str(w['first_done_s']) for w in workers)} s, last at {', '.join(str(w['last_done_s']) for w in workers)} s "
                  f"(from the first finished)"]
    lines += [f"- 2 workers / 1 worker, {s.get('on', 'wall time')}: {s['value'] if s['value'] is not None else '-'}x "
              f"(target at least {s['target']}x): {verdict[s['met']]}",
              f"- scan on 1 worker against predict: {o['value'] * 100:+.1f}% wall time (target at most "
              f"+{o['target'] * 100:.0f}%): {verdict[o['met']]}", ""]
    return lines
