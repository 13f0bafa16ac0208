"""`unmask scan`: the Beam pipeline on real runners (two worker processes of the local
runner, and once the portable path through Beam's job service and an external worker pool)
gives `unmask predict`'s rows, counts its metrics, sends bad files to the dead letters with
their reason and, run again, writes nothing new."""
from __future__ import annotations

import csv
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.synthetic import bad_files, chart, face_image, write_image
from training.commands import main
from training.scoring import COLUMNS

REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 600  # a pipeline here takes about a minute; the machine may be loaded
# TensorFlow threads asked of each worker in the first run: one more than the default, so only
# the option (not the default, nor TensorFlow's own) can give it.
THREADS = max(1, len(os.sched_getaffinity(0)) // 2) + 1
BAD = {"corrupt.jpg": "not_an_image",  # Pillow cannot tell it is a JPEG at all
        "truncated.jpg": "truncated", "notes.jpg": "not_an_image", "empty.png": "empty"}


def _env():
    # Worker processes are started by Beam: they must import this checkout, and the worker
    # pool starts `python` from PATH.
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def scan(src, dst, *extra) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "training.commands", "scan", str(src), "--out", str(dst), "--model", "tiny", *extra]
    return subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


def metrics(stderr: str) -> dict:
    m = re.search(r"scan: (\d+) pictures checked, (\d+) faces, (\d+) no_face, (\d+) errors, (\d+) already written", stderr)
    assert m, stderr[-3000:]
    out = dict(zip(("pictures", "faces", "no_face", "errors", "already_written"), map(int, m.groups())))
    w = re.search(r"scan: pictures by worker process: (.*)", stderr)
    out["workers"] = dict(kv.split(": ") for kv in w.group(1).split(", ")) if w else {}
    return out


def assert_same_rows(scanned: dict, predicted: dict):
    """Equal rows: every column exactly, except that a score may differ by one step of its
    4-decimal rounding (the model sees other batch sizes here, and float sums of another
    batch size may round the other way)."""
    assert scanned.keys() == predicted.keys()
    for path, row in scanned.items():
        want = predicted[path]
        for c in COLUMNS:
            if c in ("p_fake", "confidence", "p_fake_raw") and row[c] and want[c]:
                assert abs(float(row[c]) - float(want[c])) <= 1.0001e-4, (path, c, row[c], want[c])
            else:
                assert row[c] == want[c], (path, c, row[c], want[c])


def shards(dst: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(dst.iterdir())}


def jsonl(dst: Path, pattern: str) -> list[dict]:
    return [json.loads(line) for p in sorted(dst.glob(pattern)) for line in p.read_text().splitlines() if line]


def scanned_rows(dst: Path) -> dict[str, dict]:
    """The rows of both outputs, as predict's CSV writes them; the two must agree."""
    import pyarrow.parquet as pq

    from training.scan import as_predict

    from_json = [as_predict(r) for r in jsonl(dst, "rows-*.jsonl")]
    from_parquet = [as_predict(r) for p in sorted(dst.glob("rows-*.parquet")) for r in pq.read_table(p).to_pylist()]
    assert sorted(from_json, key=lambda r: r["path"]) == sorted(from_parquet, key=lambda r: r["path"])
    rows = {r["path"]: r for r in from_json}
    assert len(rows) == len(from_json), "a picture was written twice"
    return rows


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("scan") / "photos"
    write_image(root / "a" / "real_0.jpg", face_image("real", 200, 1))
    write_image(root / "a" / "real_1.jpg", face_image("real", 180, 2))
    write_image(root / "b" / "fake_0.png", face_image("fake", 220, 3))
    write_image(root / "chart.png", chart())
    for name, path in bad_files(root / "bad").items():
        if path.name not in BAD:
            path.unlink()
    (root / "readme.txt").write_text("not an image, and not named like one")
    return root


@pytest.fixture(scope="module")
def predicted(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("predict") / "preds.csv"
    assert main(["predict", "--model", "tiny", str(folder), "--out", str(out), "--quiet"]) == 1  # bad files
    with open(out, newline="") as f:
        return {r["path"]: r for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def first(folder, tmp_path_factory):
    dst = tmp_path_factory.mktemp("scanned") / "out"
    run = scan(folder, dst, "--workers", "2", "--max-batch", "2", "--threads-per-worker", str(THREADS),
               "--metrics", str(dst.parent / "metrics.json"))
    return dst, run


def test_rows_equal_predict_on_two_worker_processes(first, predicted):
    dst, run = first
    assert run.returncode == 1, run.stderr[-3000:]  # some files went to the dead letters
    rows = scanned_rows(dst)
    assert list(next(iter(rows.values()))) == COLUMNS
    assert_same_rows(rows, predicted)
    assert len(rows) == 8 and {r["verdict"] for r in rows.values()} >= {"no_face", "error"}
    m = metrics(run.stderr)
    assert len(m["workers"]) == 2, run.stderr[-3000:]  # the Reshuffle spread pictures over both
    assert sum(map(int, m["workers"].values())) == 4


def test_metrics_are_counted(first, predicted):
    m = metrics(first[1].stderr)
    good = [r for r in predicted.values() if r["verdict"] != "error"]
    assert m["pictures"] == len(good) == 4
    assert m["errors"] == len(BAD)
    assert m["no_face"] == sum(r["verdict"] == "no_face" for r in good) == 1
    assert m["faces"] == sum(int(r["faces"]) for r in good) == 3
    assert m["already_written"] == 0
    assert re.search(r"scan: \d+ batches, latency mean [\d.]+ ms", first[1].stderr)


def test_each_worker_runs_tensorflow_on_the_threads_asked_and_times_its_batches(first):
    dst, run = first
    m = json.loads((dst.parent / "metrics.json").read_text())
    workers = m["workers"]
    assert len(workers) == 2 and m["threads_per_worker"] == THREADS
    # Said by TensorFlow inside each worker process, after its model was loaded there.
    assert {pid: w["tf_threads"] for pid, w in workers.items()} == {pid: THREADS for pid in workers}
    assert f"scan: TensorFlow threads by worker process: {', '.join(f'{pid}: {THREADS}' for pid in sorted(workers))}" in run.stderr
    assert sum(w["pictures"] for w in workers.values()) == m["pictures"] == 4
    assert sum(w["batches"] for w in workers.values()) == m["batch_latency_ms"]["batches"]
    for w in workers.values():
        assert 1 <= w["first_batch"] <= w["pictures"] and w["first_done_ms"] <= w["last_done_ms"]
    steady = m["steady"]
    assert steady["pictures"] == sum(w["pictures"] - w["first_batch"] for w in workers.values())
    window_ms = max(w["last_done_ms"] for w in workers.values()) - min(w["first_done_ms"] for w in workers.values())
    assert steady["window_s"] == round(window_ms / 1000, 3)
    assert steady["pictures_per_s"] == (round(steady["pictures"] / (window_ms / 1000), 2) if steady["pictures"] else None)
    assert f"scan: steady rate {steady['pictures_per_s'] or '-'} pictures/s ({steady['pictures']} pictures" in run.stderr


def test_bad_files_are_dead_letters_with_their_reason(first, predicted):
    dst, _ = first
    dead = {d["path"]: d for d in jsonl(dst, "dead_letters-*.jsonl")}
    assert {p: d["reason"] for p, d in dead.items()} == {f"bad/{name}": reason for name, reason in BAD.items()}
    for path, d in dead.items():
        assert f"{d['reason']}: {d['message']}" == predicted[path]["error"]


def test_a_rerun_skips_what_is_written_and_writes_nothing_new(folder, first):
    dst, _ = first
    before = shards(dst)
    run = scan(folder, dst, "--workers", "1")
    assert run.returncode == 0, run.stderr[-3000:]
    m = metrics(run.stderr)
    assert m["already_written"] == 8 and m["pictures"] == 0 and m["errors"] == 0
    assert shards(dst) == before


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen, timeout_s: float = 120):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"exited with {proc.returncode}"
        try:
            socket.create_connection(("localhost", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"nothing listens on {port} after {timeout_s} s")


def test_portable_runner_with_a_job_service_and_an_external_worker_pool(folder, predicted, tmp_path):
    """The path Flink and Spark deployments take: the pipeline goes to a job service as a
    portable job, and its workers run in a separate worker pool."""
    job_port, pool_port = _free_port(), _free_port()
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = []
    try:
        for name, args, port in (
                ("jobs", ["apache_beam.runners.portability.local_job_service_main", "--port", str(job_port)], job_port),
                ("pool", ["apache_beam.runners.worker.worker_pool_main", "--service_port", str(pool_port)], pool_port)):
            with open(logs / f"{name}.log", "w") as log:
                procs.append(subprocess.Popen([sys.executable, "-m", *args], cwd=REPO, env=_env(), stdout=log, stderr=log))
            _wait_listening(port, procs[-1])
        dst = tmp_path / "out"
        run = scan(folder, dst, "--", "--runner=PortableRunner", f"--job_endpoint=localhost:{job_port}",
                   "--environment_type=EXTERNAL", f"--environment_config=localhost:{pool_port}")
        assert run.returncode == 1, run.stderr[-3000:] + "".join(p.read_text()[-2000:] for p in logs.iterdir())
        assert_same_rows(scanned_rows(dst), predicted)
        assert {d["path"] for d in jsonl(dst, "dead_letters-*.jsonl")} == {f"bad/{n}" for n in BAD}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def test_settings_are_checked_and_other_commands_still_refuse_unknown_options(folder, tmp_path, capsys):
    assert main(["scan", str(folder), "--out", str(tmp_path / "o"), "--workers", "0"]) == 2
    assert main(["scan", str(folder), "--out", str(tmp_path / "o"), "--threads-per-worker", "0"]) == 2
    assert "--threads-per-worker must be at least 1" in capsys.readouterr().err
    assert main(["scan", str(folder), "--out", str(tmp_path / "o"), "--min-batch", "4", "--max-batch", "2"]) == 2
    assert "--min-batch is over --max-batch" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    with pytest.raises(SystemExit) as e:
        main(["predict", "--model", "tiny", str(folder), "--out", str(tmp_path / "p.csv"), "--runner=X"])
    assert e.value.code == 2 and "unrecognized arguments: --runner=X" in capsys.readouterr().err


def test_local_runner_by_default_and_the_users_runner_otherwise():
    from argparse import Namespace

    from training.commands.scan import pipeline_options, threads_per_worker

    local = pipeline_options([], 3)
    assert "--runner=FnApiRunner" in local and "--direct_running_mode=multi_processing" in local
    assert "--direct_num_workers=3" in local
    assert pipeline_options(["--", "--runner=FlinkRunner", "--flink_master=h:8081"], 3) == ["--runner=FlinkRunner", "--flink_master=h:8081"]
    # TensorFlow's threads: the cores here shared among the local workers; on a named runner's
    # workers (maybe other machines) TensorFlow's own default, unless asked.
    cores = len(os.sched_getaffinity(0))
    assert threads_per_worker(Namespace(threads_per_worker=None, workers=cores + 1), []) == 1
    assert threads_per_worker(Namespace(threads_per_worker=None, workers=1), []) == cores
    assert threads_per_worker(Namespace(threads_per_worker=None, workers=1), ["--runner=FlinkRunner"]) is None
    assert threads_per_worker(Namespace(threads_per_worker=3, workers=1), ["--runner=FlinkRunner"]) == 3
