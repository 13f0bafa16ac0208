"""Scan a folder of pictures on Apache Beam: `unmask predict`'s rows for archives of any size.

    unmask scan photos/ --out scanned/ --model ensemble [--workers 2] [-- BEAM OPTIONS]

SRC is a folder on any filesystem Beam reads (a local path, gs://..., s3://...); DST gets
rows-RUN-*.parquet and rows-RUN-*.jsonl (predict's columns and values, an empty number as
null) and dead_letters-RUN-*.jsonl (path, reason, message of each file that could not be
read; it has an error row too). A rerun skips the pictures DST already holds. Progress
lines come from each worker; the metrics (pictures, faces, no_face, errors, batch latency,
pictures per worker process, TensorFlow's threads in each, and the steady rate: pictures per
second after each worker's first batch, which carries its start-up) are printed at the end,
and written as JSON with --metrics FILE.

Each worker process gives TensorFlow --threads-per-worker threads (intra-op and inter-op),
set in the worker before its first op: by default the cores here divided among the local
runner's workers, so two workers do not fight over the same cores; with another runner,
TensorFlow's own default (every core of the worker's machine) unless given.

Anything after `--` (or any option this command does not know) is a Beam pipeline option.
Without --runner it runs here on the local portable runner, one process per worker
(--runner=FnApiRunner --direct_running_mode=multi_processing --direct_num_workers=N), never
the Prism binary the DirectRunner would download. See the README for Flink, Spark and
Dataflow. Exit status: 0 when every file was checked, 1 when some went to the dead letters.
"""
from __future__ import annotations

import json
import os
import sys
import time

# Lets `unmask` hand the options it does not know to this command (see commands/__init__.py).
PASSES_UNKNOWN_OPTIONS = True


def add_arguments(p):
    p.add_argument("folder", metavar="SRC", help="folder to scan (recursively): a path, gs://..., s3://...")
    p.add_argument("--out", required=True, metavar="DST", help="folder for the row shards and dead letters")
    p.add_argument("--model", default="tiny", help="tiny, ensemble, a run folder or a .keras file (default: tiny)")
    p.add_argument("--workers", type=int, default=2, help="worker processes of the local runner (default: 2)")
    p.add_argument("--min-batch", type=int, default=1, help="fewest pictures per model call (default: 1)")
    p.add_argument("--max-batch", type=int, default=32, help="most pictures per model call (default: 32)")
    p.add_argument("--threads-per-worker", type=int, metavar="K",
                   help="TensorFlow threads in each worker process, intra-op and inter-op (default: the cores "
                        "here divided by --workers, at least 1, on the local runner; TensorFlow's default with --runner)")
    p.add_argument("--metrics", metavar="FILE", help="also write the metrics printed at the end to FILE as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def names_runner(beam_args: list[str]) -> bool:
    return any(a == "--runner" or a.startswith("--runner=") for a in beam_args)


def threads_per_worker(args, beam_args: list[str]) -> int | None:
    """--threads-per-worker, or its default: the cores shared among the local runner's workers;
    None (TensorFlow's default) for a runner the user named, whose workers may be elsewhere."""
    if args.threads_per_worker is not None:
        return args.threads_per_worker
    return None if names_runner(beam_args) else max(1, cores() // args.workers)


def pipeline_options(beam_args: list[str], workers: int) -> list[str]:
    """The Beam options: the user's, or the local multi-process runner when no runner is named."""
    args = [a for a in beam_args if a != "--"]
    if not names_runner(args):
        args = ["--runner=FnApiRunner", "--direct_running_mode=multi_processing",
                f"--direct_num_workers={workers}", "--default_sdk_harness_log_level=ERROR"] + args
    return args


def run(args) -> int:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from training.commands import CLIError
    from training.scan import build, summary, written_paths

    for name in ("workers", "min_batch", "max_batch", "threads_per_worker"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise CLIError(f"--{name.replace('_', '-')} must be at least 1")
    if args.min_batch > args.max_batch:
        raise CLIError("--min-batch is over --max-batch")
    beam_args = getattr(args, "unknown", [])
    threads = threads_per_worker(args, beam_args)
    options = PipelineOptions(pipeline_options(beam_args, args.workers))
    done = frozenset(written_paths(args.out))
    run_id = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{os.getpid()}"
    if done:
        print(f"scan: {len(done)} pictures already in {args.out} are skipped", file=sys.stderr)
    p = beam.Pipeline(options=options)
    build(p, args.folder, args.out, model=args.model, run_id=run_id, done=done,
          min_batch_size=args.min_batch, max_batch_size=args.max_batch, progress=not args.quiet, threads=threads)
    result = p.run()
    result.wait_until_finish()
    state = str(result.state)
    if "DONE" not in state:
        raise CLIError(f"the pipeline ended {state}")
    try:
        m = summary(result)
    except Exception as e:  # noqa: BLE001  a runner may not report metrics; the rows are written
        print(f"scan: metrics not available from this runner ({type(e).__name__}: {e})", file=sys.stderr)
        m = {}
    print(f"scan: {m.get('pictures', 0)} pictures checked, {m.get('faces', 0)} faces, {m.get('no_face', 0)} no_face, "
          f"{m.get('errors', 0)} errors, {m.get('already_written', 0)} already written, "
          f"{m.get('other_files', 0)} other files passed over", file=sys.stderr)
    if m.get("batch_latency_ms"):
        b = m["batch_latency_ms"]
        print(f"scan: {b['batches']} batches, latency mean {b['mean']} ms, min {b['min']} ms, max {b['max']} ms", file=sys.stderr)
    if m.get("workers"):
        workers = sorted(m["workers"].items())
        print("scan: pictures by worker process: " + ", ".join(f"{pid}: {w['pictures']}" for pid, w in workers), file=sys.stderr)
        print("scan: TensorFlow threads by worker process: "
              + ", ".join(f"{pid}: {w.get('tf_threads') or 'default'}" for pid, w in workers)
              + f" (asked: {threads or 'default'}; {cores()} cores here)", file=sys.stderr)
    if m.get("steady"):
        s = m["steady"]
        print(f"scan: steady rate {s['pictures_per_s'] or '-'} pictures/s ({s['pictures']} pictures after each worker's "
              f"first batch, in {s['window_s']} s)", file=sys.stderr)
    if args.metrics:
        m.update(threads_per_worker=threads, cores=cores(), workers_asked=args.workers)
        os.makedirs(os.path.dirname(os.path.abspath(args.metrics)), exist_ok=True)
        with open(args.metrics, "w") as f:
            json.dump(m, f, indent=1)
    print(f"wrote {args.out}", file=sys.stderr)
    return 1 if m.get("errors") else 0
