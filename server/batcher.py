"""A dynamic micro-batcher: requests that arrive together share one model call.

Request threads `submit` prepared inputs and wait on futures. One thread takes the first
waiting input, then keeps gathering until it holds `max_batch` inputs or `max_wait_s` has
passed since the first, and runs `fn` on the stacked batch. On a GPU this keeps the device
busy with large batches; on a CPU it still saves per-call overhead. Disabled, `fn` runs in
the calling thread, one request at a time.
"""
from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future

import numpy as np


class MicroBatcher:
    def __init__(self, fn, max_batch: int = 16, max_wait_s: float = 0.01, enabled: bool = True):
        """fn: a (N, ...) array -> a list of N results, in order."""
        self.fn = fn
        self.max_batch = max(1, int(max_batch))
        self.max_wait_s = max(0.0, float(max_wait_s))
        self.enabled = enabled
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self.calls = 0
        self.items = 0
        self.largest = 0

    def stats(self) -> dict:
        with self._stats_lock:
            return {
                "enabled": self.enabled,
                "max_batch": self.max_batch,
                "max_wait_ms": round(self.max_wait_s * 1000, 3),
                "model_calls": self.calls,
                "inputs": self.items,
                "largest_batch": self.largest,
            }

    def run(self, inputs: list[np.ndarray]) -> list:
        """Results for `inputs` (each one model input), in order."""
        if not inputs:
            return []
        if not self.enabled:
            out = []
            for i in range(0, len(inputs), self.max_batch):
                out.extend(self._call(np.stack(inputs[i : i + self.max_batch])))
            return out
        futures = [self.submit(x) for x in inputs]
        return [f.result() for f in futures]

    def submit(self, x: np.ndarray) -> Future:
        self._ensure_thread()
        future: Future = Future()
        self._queue.put((x, future))
        return future

    def _call(self, batch: np.ndarray) -> list:
        results = list(self.fn(batch))
        if len(results) != len(batch):
            raise RuntimeError(f"batch function returned {len(results)} results for {len(batch)} inputs")
        with self._stats_lock:
            self.calls += 1
            self.items += len(batch)
            self.largest = max(self.largest, len(batch))
        return results

    def _ensure_thread(self) -> None:
        # Started on first use, in the process that serves (gunicorn forks workers first).
        if self._thread is not None and self._thread.is_alive():
            return
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="micro-batcher", daemon=True)
                self._thread.start()

    def _gather(self) -> list:
        pending = [self._queue.get()]
        deadline = time.monotonic() + self.max_wait_s
        while len(pending) < self.max_batch:
            left = deadline - time.monotonic()
            try:
                pending.append(self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait())
            except queue.Empty:
                break
        return pending

    def _loop(self) -> None:
        while True:
            pending = self._gather()
            pending = [(x, f) for x, f in pending if f.set_running_or_notify_cancel()]
            if not pending:
                continue
            try:
                results = self._call(np.stack([x for x, _ in pending]))
            except BaseException as e:  # every waiting request learns of the failure
                for _, f in pending:
                    f.set_exception(e)
                continue
            for (_, f), r in zip(pending, results):
                f.set_result(r)
