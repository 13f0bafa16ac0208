"""`unmask scan` as an Apache Beam pipeline: the rows of `unmask predict` for archives too big
for one process, on any runner (the local one here, Flink, Spark or Dataflow at scale).

    MatchFiles(SRC/**) -> pictures not yet in DST -> Reshuffle -> read + decode
        (bad files -> dead letters, with the reason) -> RunInference(FaceCheckHandler)
        -> rows -> Parquet and JSONL shards in DST (+ the dead letters as JSONL)

The Reshuffle is what spreads the pictures over workers: without it every step fuses into
the one that listed the files. The handler wraps FaceCheck (faces, crops, scores,
calibration) and adds the file's provenance, exactly as `unmask predict` does
(training/scoring.py decode / judge / predict_row), so a row is the same in both.

Each run writes its own shards, named by a run id, and a run reads the rows DST already
holds first: a rerun checks only the pictures not yet written (a run stopped midway
leaves no shard, so its pictures are checked again).
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any, Iterable, NamedTuple, Sequence

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import ModelHandler, PredictionResult, RunInference
from apache_beam.metrics import Metrics

from training.scoring import COLUMNS, IMAGE_SUFFIXES, decode, judge, predict_row

NAMESPACE = "unmask.scan"
# Per worker process, named "WHAT_pid_PID": pictures, first_batch (its pictures), batch_done_ms
# (when each batch finished, ms since the epoch) and tf_threads (TensorFlow's intra-op threads there).
WORKERS_NAMESPACE = "unmask.scan.workers"
DEAD_LETTERS = "dead_letters"
PROGRESS_EVERY_S = 10.0
# Column types of the rows; an empty CSV field of `unmask predict` is a null here.
NUMERIC = {"p_fake": float, "faces": int, "confidence": float, "p_fake_raw": float}


def parquet_schema():
    import pyarrow as pa

    kind = {float: pa.float64(), int: pa.int64()}
    return pa.schema([(c, kind[NUMERIC[c]] if c in NUMERIC else pa.string()) for c in COLUMNS])


def typed(row: dict) -> dict:
    """predict_row's values as typed columns: numbers as numbers, an empty number as null."""
    return {c: (None if row[c] == "" else NUMERIC[c](row[c])) if c in NUMERIC else row[c] for c in COLUMNS}


def as_predict(record: dict) -> dict:
    """A scan row as `unmask predict` writes it in its CSV (for comparing the two)."""
    return {c: "" if record[c] is None else str(record[c]) for c in COLUMNS}


def source_base(src: str) -> str:
    """SRC as a folder prefix every worker can read: local paths made absolute."""
    if FileSystems.get_scheme(src) is None:
        src = os.path.abspath(src)
    return src.rstrip("/") + "/"


def written_paths(dst: str) -> set[str]:
    """The pictures DST's row shards already hold (any Beam filesystem)."""
    done: set[str] = set()
    pattern = FileSystems.join(dst, "rows-*.jsonl")
    try:
        matched = FileSystems.match([pattern])[0].metadata_list
    except Exception:  # noqa: BLE001  an empty or new DST: nothing written yet
        return done
    for meta in matched:
        with FileSystems.open(meta.path) as f:
            for line in f:
                if line.strip():
                    done.add(json.loads(line)["path"])
    return done


class Picture(NamedTuple):
    path: str  # below SRC, with "/" as in predict's CSV
    data: bytes
    image: Any  # uint8 RGB array


class _Progress:
    """A line on stderr every PROGRESS_EVERY_S from each worker process."""

    def __init__(self, show: bool):
        self.show, self.n, self.errors, self.last = show, 0, 0, time.monotonic()

    def tick(self, pictures=0, errors=0):
        self.n += pictures
        self.errors += errors
        if self.show and time.monotonic() - self.last >= PROGRESS_EVERY_S:
            self.last = time.monotonic()
            print(f"scan: worker {os.getpid()}: {self.n} pictures checked, {self.errors} unreadable so far",
                  file=sys.stderr, flush=True)


class Pending(beam.DoFn):
    """Image files (by extension) below SRC that DST does not hold yet, as relative paths."""

    def __init__(self, base: str, done: frozenset):
        self.base, self.done = base, done
        self.skipped = Metrics.counter(NAMESPACE, "already_written")
        self.others = Metrics.counter(NAMESPACE, "other_files")

    def process(self, meta) -> Iterable[str]:
        path = meta.path
        rel = path[len(self.base):] if path.startswith(self.base) else path
        if os.path.splitext(rel)[1].lower() not in IMAGE_SUFFIXES:
            self.others.inc()
        elif rel in self.done:
            self.skipped.inc()
        else:
            yield rel


class ReadPicture(beam.DoFn):
    """Read and decode one file; a file that cannot be read or decoded goes to the dead
    letters with its reason (predict's error for it), never an exception."""

    def __init__(self, base: str, progress: bool):
        self.base, self.progress = base, progress
        self.errors = Metrics.counter(NAMESPACE, "errors")

    def setup(self):
        self._progress = _Progress(self.progress)

    def process(self, rel: str):
        try:
            with FileSystems.open(self.base + rel, compression_type="uncompressed") as f:
                data = f.read()
        except Exception as e:  # noqa: BLE001  a vanished or unreadable file is a dead letter
            image, err, data = None, ("unreadable", f"Cannot open {rel}: {e}"), b""
        else:
            image, err = decode(data)
        if err is not None:
            self.errors.inc()
            self._progress.tick(errors=1)
            yield beam.pvalue.TaggedOutput(DEAD_LETTERS, {"path": rel, "reason": err[0], "message": err[1]})
        else:
            yield Picture(rel, data, image)


class FaceCheckHandler(ModelHandler[Picture, dict, Any]):
    """RunInference's handler for our two-stage model: FaceCheck (face search, crops, the
    detector's calibrated scores) on a batch of pictures, then each file's provenance.
    Returns predict's row for each picture."""

    def __init__(self, model: str, *, min_batch_size: int = 1, max_batch_size: int = 32, progress: bool = True,
                 threads: int | None = None):
        super().__init__()
        self.model, self.min_batch_size, self.max_batch_size, self.progress = model, min_batch_size, max_batch_size, progress
        self.threads = threads  # TensorFlow's threads in each worker process; None: TensorFlow's default
        self.pictures = Metrics.counter(NAMESPACE, "pictures")
        self.faces = Metrics.counter(NAMESPACE, "faces")
        self.no_face = Metrics.counter(NAMESPACE, "no_face")
        self.latency = Metrics.distribution(NAMESPACE, "batch_latency_ms")
        self._progress = None

    def load_model(self):
        from models.detector import Detector
        from models.inference import FaceCheck
        from models.tensorflow_import import set_cpu_threads

        if self.threads is not None:  # here, in the worker process, before its TensorFlow's first op
            set_cpu_threads(self.threads)
        return FaceCheck(Detector.load(self.model))

    def batch_elements_kwargs(self):
        return {"min_batch_size": self.min_batch_size, "max_batch_size": self.max_batch_size}

    def run_inference(self, batch: Sequence[Picture], model, inference_args=None) -> Iterable[PredictionResult]:
        if self._progress is None:
            self._progress = _Progress(self.progress)
        start = time.perf_counter()
        results = model.check_images([p.image for p in batch])
        rows = [typed(predict_row(p.path, judge(p.data, p.image, r), None)) for p, r in zip(batch, results)]
        self.latency.update(int(round((time.perf_counter() - start) * 1000)))
        self.pictures.inc(len(batch))
        _worker_batch_done(len(batch))
        self.faces.inc(sum(r["faces"] for r in rows))
        self.no_face.inc(sum(r["verdict"] == "no_face" for r in rows))
        self._progress.tick(pictures=len(batch))
        return [PredictionResult(p.path, row) for p, row in zip(batch, rows)]

    def get_metrics_namespace(self) -> str:
        return NAMESPACE


_first_batch_lock = threading.Lock()
_first_batch_done = False  # in this worker process, by any of its handlers


def _worker_batch_done(pictures: int):
    """This worker process's figures for one finished batch (see WORKERS_NAMESPACE)."""
    global _first_batch_done
    import tensorflow as tf  # imported by load_model already

    pid = os.getpid()
    Metrics.counter(WORKERS_NAMESPACE, f"pictures_pid_{pid}").inc(pictures)
    Metrics.distribution(WORKERS_NAMESPACE, f"batch_done_ms_pid_{pid}").update(int(time.time() * 1000))
    with _first_batch_lock:
        first, _first_batch_done = not _first_batch_done, True
    if first:
        Metrics.counter(WORKERS_NAMESPACE, f"first_batch_pid_{pid}").inc(pictures)
        Metrics.distribution(WORKERS_NAMESPACE, f"tf_threads_pid_{pid}").update(
            tf.config.threading.get_intra_op_parallelism_threads())  # 0: TensorFlow's default (all cores)


def _skip_if_empty(write):
    # WriteToParquet has no skip_if_empty argument (WriteToText has); its sink does, and a
    # rerun with nothing left to check must write no empty shard.
    write._sink.skip_if_empty = True
    return write


def build(p: beam.Pipeline, src: str, dst: str, *, model: str, run_id: str, done: frozenset = frozenset(),
          min_batch_size: int = 1, max_batch_size: int = 32, progress: bool = True, threads: int | None = None):
    """The scan as transforms on `p` (see the module doc)."""
    base = source_base(src)
    read = (p
            | "Match" >> fileio.MatchFiles(base + "**", empty_match_treatment=fileio.EmptyMatchTreatment.ALLOW)
            | "Pending" >> beam.ParDo(Pending(base, done))
            | "Spread" >> beam.Reshuffle()
            | "Read" >> beam.ParDo(ReadPicture(base, progress)).with_outputs(DEAD_LETTERS, main="pictures"))
    handler = FaceCheckHandler(model, min_batch_size=min_batch_size, max_batch_size=max_batch_size, progress=progress,
                               threads=threads)
    checked = read.pictures | "Check" >> RunInference(handler) | "Row" >> beam.Map(lambda r: r.inference)
    refused = read[DEAD_LETTERS] | "ErrorRow" >> beam.Map(lambda d: typed(predict_row(d["path"], None, (d["reason"], d["message"]))))
    rows = (checked, refused) | "Rows" >> beam.Flatten()
    prefix = FileSystems.join(dst, f"rows-{run_id}")
    rows | "Parquet" >> _skip_if_empty(beam.io.WriteToParquet(prefix, parquet_schema(), file_name_suffix=".parquet"))
    (rows | "RowJson" >> beam.Map(json.dumps)
          | "JSONL" >> beam.io.WriteToText(prefix, file_name_suffix=".jsonl", skip_if_empty=True))
    (read[DEAD_LETTERS] | "DeadJson" >> beam.Map(json.dumps)
                        | "DeadLetters" >> beam.io.WriteToText(FileSystems.join(dst, f"{DEAD_LETTERS}-{run_id}"),
                                                               file_name_suffix=".jsonl", skip_if_empty=True))
    return rows


def summary(result) -> dict:
    """The scan's metrics from a finished pipeline: counters by name, the batch latency
    distribution (ms), each worker process's figures and the steady rate (see steady_state)."""
    from apache_beam.metrics.metric import MetricsFilter

    def value(m):
        return m.committed if m.committed is not None else m.attempted

    out: dict = {"workers": {}}
    query = result.metrics().query(MetricsFilter())
    for m in query["counters"] + query["distributions"]:
        ns, name, v = m.key.metric.namespace, m.key.metric.name, value(m)
        if ns == WORKERS_NAMESPACE:
            what, pid = name.rsplit("_pid_", 1)
            w = out["workers"].setdefault(pid, {"pictures": 0, "first_batch": 0})
            if what == "batch_done_ms":
                w.update(batches=v.count, first_done_ms=v.min, last_done_ms=v.max)
            elif what == "tf_threads":
                w["tf_threads"] = v.max
            else:
                w[what] += v
        elif ns == NAMESPACE and name == "batch_latency_ms":
            if v is not None and v.count:
                out["batch_latency_ms"] = {"batches": v.count, "mean": round(v.sum / v.count, 1), "min": v.min, "max": v.max}
        elif ns == NAMESPACE and isinstance(v, int):
            out[name] = out.get(name, 0) + v
    out["steady"] = steady_state(out["workers"])
    return out


def steady_state(workers: dict) -> dict:
    """The scan's rate once it has started: the pictures each worker checked after its own first
    batch (which carries its start-up and model load), over the window from the first batch
    finished by any worker to the last one finished by any:
        pictures_per_s = sum(pictures - first_batch) / (max(last_done) - min(first_done))
    A worker that starts late counts its wait inside the window, so this errs low. None when
    no worker finished a second batch."""
    timed = [w for w in workers.values() if w.get("batches")]
    pictures = sum(w["pictures"] - w["first_batch"] for w in timed)
    window_ms = max((w["last_done_ms"] for w in timed), default=0) - min((w["first_done_ms"] for w in timed), default=0)
    rate = round(pictures / (window_ms / 1000), 2) if pictures and window_ms > 0 else None
    return {"pictures": pictures, "window_s": round(window_ms / 1000, 3), "pictures_per_s": rate}
