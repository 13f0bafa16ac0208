"""What every benchmark section shares: the machine, the load, summaries of repeated runs,
the images to measure with, and progress lines.

Figures are never invented or estimated here: a summary is computed from the values a
section measured, and says how many there were.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".tmp" / "bench"  # converted models and stand-in detectors, reused between runs
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "faces-v1"


class BenchError(RuntimeError):
    """A section cannot run (a tool or file is missing, a server did not start): the message
    says what went wrong and what to do."""


def say(section: str, msg: str) -> None:
    print(f"[bench {section}] {msg}", file=sys.stderr, flush=True)


# --- the machine ------------------------------------------------------------------------------
def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (/proc/loadavg)."""
    parts = _read("/proc/loadavg").split()
    return [float(x) for x in parts[:3]] if len(parts) >= 3 else []


def _command_version(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else None


def machine() -> dict:
    """CPU model, cores and memory from /proc, and the versions of what ran the figures."""
    cpuinfo = _read("/proc/cpuinfo")
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")]
    meminfo = {line.split(":")[0]: line.split(":")[1].strip() for line in _read("/proc/meminfo").splitlines() if ":" in line}
    mem_kb = int(meminfo.get("MemTotal", "0 kB").split()[0])
    os_name = next((line.split("=", 1)[1].strip('"') for line in _read("/etc/os-release").splitlines()
                    if line.startswith("PRETTY_NAME=")), platform.system())
    return {
        "cpu_model": models[0] if models else platform.processor() or "unknown",
        "cores": len(models) or os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "os": os_name,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": _command_version(["node", "--version"]),
        "chromium": _command_version([os.environ.get("UNMASK_CHROMIUM", "/usr/bin/chromium"), "--version"]),
        "source": "/proc/cpuinfo, /proc/meminfo, /etc/os-release",
    }


# --- summaries --------------------------------------------------------------------------------
def run_node_bench(script: str, config: dict, work: Path) -> dict:
    """Run bench/SCRIPT (a node script driving Chromium) on a JSON config written to `work`;
    the figures it writes to config["out"]. Its progress goes to our stderr as it comes; a
    failure raises BenchError with the lines that say why."""
    config_path = work / f"{Path(script).stem}-config.json"
    config_path.write_text(json.dumps(config))
    proc = subprocess.run(["node", str(ROOT / "bench" / script), str(config_path)], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if "error" in ln.lower()] or proc.stderr.strip().splitlines()[-1:]
        raise BenchError(f"bench/{script} failed ({proc.returncode}): {' '.join(lines[:3]) or 'see the lines above'}")
    return json.loads(Path(config["out"]).read_text())


def percentile(values, q: float) -> float:
    """The q-th percentile (0..100), linear between the closest ranks (numpy's default)."""
    s = sorted(values)
    if not s:
        raise ValueError("no values")
    k = (len(s) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary(values, *, p95: bool = False, p99: bool = False, digits: int = 3) -> dict:
    """{median, min, max, runs} (and p95 / p99) of measured values."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("nothing was measured")
    out = {"median": round(statistics.median(values), digits), "min": round(min(values), digits),
           "max": round(max(values), digits), "runs": len(values)}
    if p95:
        out["p95"] = round(percentile(values, 95), digits)
    if p99:
        out["p99"] = round(percentile(values, 99), digits)
    return out


def timed(fn, runs: int, warmup: int = 1, cpu: bool = False):
    """Seconds per call of fn() over `runs` calls, after `warmup` untimed ones. With `cpu`,
    (wall seconds, CPU seconds of this process, all its threads): on a shared machine the
    CPU time is the work done, while the wall time also waits for other people's jobs."""
    for _ in range(warmup):
        fn()
    times, cpu_times = [], []
    for _ in range(runs):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    return (times, cpu_times) if cpu else times


def file_hash(*paths) -> str:
    h = hashlib.sha256()
    for p in paths:
        p = Path(p)
        h.update(p.read_bytes() if p.is_file() else str(p).encode())
    return h.hexdigest()[:12]


# --- images to measure with -------------------------------------------------------------------
@dataclass
class ImageSet:
    paths: list[Path]
    labels: list[int]  # 1 = fake
    source: str  # what a reader of the results needs to know about them


def image_set(n: int, data: Path | None, folder: Path, size: int = 256) -> ImageSet:
    """n labelled JPEG files: a seeded sample of `data` (a faces-v1-like folder with
    manifest.csv) when given, else synthetic faces (tests/synthetic.py) written to `folder`."""
    if data is not None:
        manifest = Path(data) / "manifest.csv"
        if not manifest.is_file():
            raise BenchError(f"{data} has no manifest.csv; give --data a folder like faces-v1, or --synthetic")
        with open(manifest, newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("label") in ("real", "fake")]
        if len(rows) < n:
            raise BenchError(f"{manifest} lists {len(rows)} labelled images; the benchmark needs {n}")
        rows = random.Random(1337).sample(rows, n)
        paths = [Path(data) / r["path"] for r in rows]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise BenchError(f"{len(missing)} files listed in {manifest} are missing, e.g. {missing[0]}")
        return ImageSet(paths, [int(r["label"] == "fake") for r in rows], f"{n} images sampled (seed 1337) from {data}")
    from tests.synthetic import face_image, write_image

    folder.mkdir(parents=True, exist_ok=True)
    paths, labels = [], []
    for i in range(n):
        label = "fake" if i % 2 else "real"
        paths.append(write_image(folder / f"{label}_{i:04d}.jpg", face_image(label, size, 5000 + i)))
        labels.append(int(label == "fake"))
    return ImageSet(paths, labels, f"{n} synthetic {size}x{size} JPEG faces (tests/synthetic.py)")


def mb(n) -> str:
    """Bytes in MB (2^20), "-" for none."""
    return "-" if n is None else f"{n / 1024 / 1024:,.2f} MB"


def table(head: list[str], rows: list[list]) -> list[str]:
    """A Markdown table's lines, and a blank line after it."""
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return lines + [""]


def markdown_path(out: Path) -> Path:
    """Where the Markdown beside a results file goes: RESULTS.md beside results.json."""
    return out.with_name("RESULTS.md") if out.name == "results.json" else out.with_suffix(".md")


def num(x, digits: int = 1) -> str:
    """A figure as the results tables print it: "-" for none, thousands separated."""
    if x is None:
        return "-"
    if isinstance(x, int) or float(x).is_integer() and abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def rep(s: dict | None, digits: int = 1, p95: bool = False) -> str:
    """'median (min-max, n)' or with p95: 'median / p95 (min-max, n)'."""
    if not s:
        return "-"
    head = num(s["median"], digits) + (f" / {num(s['p95'], digits)}" if p95 and "p95" in s else "")
    return f"{head} ({num(s['min'], digits)}-{num(s['max'], digits)}, n={s['runs']})"


def kb(n) -> str:
    """Bytes in KB (2^10), "-" for none."""
    return "-" if n is None else f"{n / 1024:,.1f} KB"
