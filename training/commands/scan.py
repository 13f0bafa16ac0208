"""Scan a folder of pictures on Apache Beam: `unmask predict`'s rows for archives of any size.

    unmask scan photos/ --out scanned/ --model ensemble [--workers 2] [-- BEAM OPTIONS]

SRC is a folder on any filesystem Beam reads (a local path, gs://..., s3://...); DST gets
rows-RUN-*.parquet and rows-RUN-*.jsonl (predict's columns and values, an empty number as
null) and dead_letters-RUN-*.jsonl (path, reason, message of each file that could not be
read; it has an error row too). A rerun skips the pictures DST already holds. Progress
lines come from each worker; the metrics (pictures, faces, no_face, errors, batch latency,
pictures per worker process) are printed at the end.

Anything after `--` (or any option this command does not know) is a Beam pipeline option.
Without --runner it runs here on the local portable runner, one process per worker
(--runner=FnApiRunner --direct_running_mode=multi_processing --direct_num_workers=N), never
the Prism binary the DirectRunner would download. See the README for Flink, Spark and
Dataflow. Exit status: 0 when every file was checked, 1 when some went to the dead letters.
"""
from __future__ import annotations

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
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def pipeline_options(beam_args: list[str], workers: int) -> list[str]:
    """The Beam options: the user's, or the local multi-process runner when no runner is named."""
    args = [a for a in beam_args if a != "--"]
    if not any(a == "--runner" or a.startswith("--runner=") for a in args):
        args = ["--runner=FnApiRunner", "--direct_running_mode=multi_processing",
                f"--direct_num_workers={workers}", "--default_sdk_harness_log_level=ERROR"] + args
    return args


def run(args) -> int:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from training.commands import CLIError
    from training.scan import build, summary, written_paths

    for name in ("workers", "min_batch", "max_batch"):
        if getattr(args, name) < 1:
            raise CLIError(f"--{name.replace('_', '-')} must be at least 1")
    if args.min_batch > args.max_batch:
        raise CLIError("--min-batch is over --max-batch")
    options = PipelineOptions(pipeline_options(getattr(args, "unknown", []), args.workers))
    done = frozenset(written_paths(args.out))
    run_id = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{os.getpid()}"
    if done:
        print(f"scan: {len(done)} pictures already in {args.out} are skipped", file=sys.stderr)
    p = beam.Pipeline(options=options)
    build(p, args.folder, args.out, model=args.model, run_id=run_id, done=done,
          min_batch_size=args.min_batch, max_batch_size=args.max_batch, progress=not args.quiet)
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
        print("scan: pictures by worker process: " + ", ".join(f"{pid}: {n}" for pid, n in sorted(m["workers"].items())),
              file=sys.stderr)
    print(f"wrote {args.out}", file=sys.stderr)
    return 1 if m.get("errors") else 0
