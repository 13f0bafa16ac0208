"""TensorFlow's C++ start-up lines stay off the terminal; anything else on stderr, and
everything when the import fails, still shows (models/tensorflow_import.py)."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOISE = ["Unable to register cuDNN factory", "computation placer already registered", "failed call to cuInit",
         "Created TensorFlow Lite XNNPACK delegate"]  # the last from the face search's interpreter

# A stand-in for the tensorflow package that writes like the real wheel does: from C-level
# code straight to file descriptor 2, around a line that matters.
STAND_IN = '''
import os
os.write(2, b"E0000 cuda_dnn.cc:8579] Unable to register cuDNN factory: Attempting to register factory\\n")
os.write(2, b"W0000 computation_placer.cc:177] computation placer already registered. Please check linkage\\n")
os.write(2, b"a line that matters\\n")
if os.environ.get("STAND_IN_FAILS"):
    raise ImportError("libcudart.so.12: cannot open shared object file")
class config:
    @staticmethod
    def list_physical_devices(kind=None):
        os.write(2, b"E cuda_platform.cc:51] failed call to cuInit: UNKNOWN ERROR (303)\\n")
        return []
'''


def run_import(tmp_path, env=None, real=False):
    code = "from models.tensorflow_import import import_tensorflow; import_tensorflow(); print('imported')"
    path = [str(ROOT)] if real else [str(tmp_path), str(ROOT)]
    if not real:
        (tmp_path / "tensorflow").mkdir(exist_ok=True)
        (tmp_path / "tensorflow" / "__init__.py").write_text(textwrap.dedent(STAND_IN))
    return subprocess.run([sys.executable, "-c", f"import sys; sys.path[:0] = {path!r}; {code}"],
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", **(env or {})}, timeout=300)


def test_startup_lines_are_dropped_and_other_lines_kept(tmp_path):
    r = run_import(tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "imported", r.stderr
    assert "a line that matters" in r.stderr
    for line in NOISE:
        assert line not in r.stderr


def test_a_failed_import_shows_everything(tmp_path):
    r = run_import(tmp_path, env={"STAND_IN_FAILS": "1"})
    assert r.returncode != 0
    assert "libcudart.so.12" in r.stderr and "Unable to register cuDNN factory" in r.stderr
    assert "a line that matters" in r.stderr


def test_the_real_tensorflow_imports_quietly(tmp_path):
    r = run_import(tmp_path, real=True)
    assert r.returncode == 0 and r.stdout.strip() == "imported", r.stderr
    for line in NOISE:
        assert line not in r.stderr, r.stderr


def test_unmask_check_prints_the_verdict_and_no_startup_lines(tmp_path):
    from tests.synthetic import face_image, write_image

    image = write_image(tmp_path / "face.jpg", face_image("real", 256, 0))
    r = subprocess.run([str(ROOT / ".venv/bin/unmask"), "check", str(image), "--model", "tiny"],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"{image}: ")
    for line in NOISE:
        assert line not in r.stderr, r.stderr


def test_cpu_threads_are_set_before_the_first_op_or_refused_with_why():
    """models.tensorflow_import.set_cpu_threads (unmask scan --threads-per-worker, in each
    worker): a count under 1 is refused; after TensorFlow's first op fixed its pools, another
    count is refused with the process and the threads it has, the same count is fine. In a
    process of its own: the suite's TensorFlow keeps its pools."""
    code = textwrap.dedent("""
        from models.tensorflow_import import set_cpu_threads
        try:
            set_cpu_threads(0)
        except ValueError as e:
            print("refused:", e)
        tf = set_cpu_threads(1)
        print("threads:", tf.config.threading.get_intra_op_parallelism_threads())
        tf.constant(1.0) + 1.0
        set_cpu_threads(1)
        try:
            set_cpu_threads(2)
        except RuntimeError as e:
            print("late:", e)
    """)
    r = subprocess.run([sys.executable, "-c", f"import sys; sys.path[:0] = [{str(ROOT)!r}]\n{code}"],
                       capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = r.stdout.splitlines()
    assert "refused: TensorFlow threads must be a whole number of at least 1, not 0" in out
    assert "threads: 1" in out
    late = next(line for line in out if line.startswith("late:"))
    assert "cannot give TensorFlow 2 thread(s) in process" in late and "it has already started with 1" in late
