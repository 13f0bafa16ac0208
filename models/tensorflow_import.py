"""Import TensorFlow once, without its start-up noise.

The TensorFlow wheel registers its CUDA plugins and XLA parts from C++ and says so on file
descriptor 2 before Python's logging exists ("Unable to register cuDNN factory", "computation
placer already registered", "failed call to cuInit" on a machine without a GPU), lines that a
person reads as errors. TF_CPP_MIN_LOG_LEVEL does not reach all of them, so they are caught
on the descriptor itself while TensorFlow imports and finds its devices: the known start-up
lines are dropped, anything else is passed on, and if the import fails everything is shown.
TensorFlow Lite's interpreter (models/blazeface.py) says "Created TensorFlow Lite XNNPACK
delegate" the same way on its first run; `quiet_stderr` drops that line there.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
from contextlib import contextmanager

STARTUP_NOISE = re.compile(
    r"Unable to register cu(FFT|DNN|BLAS) factory|computation placer already registered|"
    r"All log messages before absl::InitializeLog\(\) is called|failed call to cuInit|"
    r"This TensorFlow binary is optimized to use available CPU instructions|"
    r"To enable the following instructions: .* rebuild TensorFlow|oneDNN custom operations are on|"
    r"Created TensorFlow Lite XNNPACK delegate for CPU"
)


@contextmanager
def quiet_stderr():
    """Inside the block, the known start-up lines written to file descriptor 2 are dropped;
    anything else is passed on when it ends, and everything if the block raises."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        failed = True
        try:
            yield
            failed = False
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            lines = caught.read().decode("utf-8", "replace").splitlines()
            shown = [ln for ln in lines if ln.strip() and (failed or not STARTUP_NOISE.search(ln))]
            if shown:
                print("\n".join(shown), file=sys.stderr, flush=True)


def import_tensorflow():
    """The tensorflow module, imported (and its devices listed) with the start-up lines dropped."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with quiet_stderr():
        import tensorflow as tf

        tf.config.list_physical_devices()  # CUDA starts here, and says so
    return tf


def set_cpu_threads(threads: int):
    """TensorFlow's CPU threads in this process: `threads` for one op's work (intra-op) and as
    many for running ops side by side (inter-op). Must come before TensorFlow's first op, which
    fixes both pools; asking again for the same number is fine. Returns the tensorflow module."""
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"TensorFlow threads must be a whole number of at least 1, not {threads!r}")
    tf = import_tensorflow()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError as e:  # TensorFlow already ran an op here with other pools
        raise RuntimeError(f"cannot give TensorFlow {threads} thread(s) in process {os.getpid()}: it has already "
                           f"started with {tf.config.threading.get_intra_op_parallelism_threads() or 'its default'} ({e})") from e
    return tf
