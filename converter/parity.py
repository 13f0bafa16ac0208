"""Parity: does the converted model in TensorFlow.js give the answers Keras gives?

The JavaScript side (converter/parity.mjs) runs the graph model under Node on the wasm
backend, decodes each file itself and prepares it with extension/src/preprocess.js and
detector.js, as the extension does. The Python side runs the Keras detector on the same files
decoded by Pillow (models.preprocessing). The report gives the largest |p_fake difference|
(calibrated p_fake: the number the extension shows and its verdicts use) and the verdicts that
differ. For the `none`, `mixed` and `float16` quantizations the largest difference must be at
most 0.01 with every verdict equal; `uint8` is reported, not held to it.

    python -m converter.parity TFJS_DIR --keras MODEL [--images DIR] [--json FILE]

Without --images it uses a fixed set of generated images of several sizes, aspect ratios and
formats (JPEG, progressive JPEG, greyscale, EXIF-rotated, PNG, RGBA and palette PNG).
Exit status: 0 parity holds, 1 it does not, 2 the check could not run.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from converter import metadata as meta_mod

REPO = Path(__file__).resolve().parents[1]
PARITY_JS = Path(__file__).with_name("parity.mjs")
TOLERANCE = 0.01
ENFORCED = ("none", "mixed", "float16")  # quantizations held to the tolerance; uint8 is reported
NODE_FORMATS = {".jpg", ".jpeg", ".png"}  # what parity.mjs decodes
IMAGE_SUFFIXES = NODE_FORMATS | {".webp", ".gif", ".bmp"}
NODE_PACKAGES = ("@tensorflow/tfjs-core", "@tensorflow/tfjs-converter", "@tensorflow/tfjs-backend-wasm", "@cwasm/jpeg-turbo", "pngjs")


class ParityError(RuntimeError):
    """The JavaScript side could not run; the message says why."""


class NodeUnavailable(FileNotFoundError):
    pass


def node_problem() -> str | None:
    """Why parity.mjs cannot run here, or None."""
    if not shutil.which("node"):
        return "Node.js is not installed (the parity check runs TensorFlow.js under Node 20); install nodejs"
    missing = [p for p in NODE_PACKAGES if not (REPO / "node_modules" / p / "package.json").is_file()]
    if missing:
        return f"the npm packages {', '.join(missing)} are missing from {REPO / 'node_modules'}; run `npm ci` (or `make node-deps`)"
    return None


def run_node(args: list[str], timeout: float | None = None, script: Path = PARITY_JS) -> dict:
    """Run converter/parity.mjs (or `script`) with `args` and return its JSON. Its progress
    goes to stderr."""
    problem = node_problem()
    if problem:
        raise NodeUnavailable(problem)
    proc = subprocess.run(["node", str(script), *args], cwd=REPO, stdout=subprocess.PIPE, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    try:
        out = json.loads(lines[-1])
    except (IndexError, ValueError) as e:
        raise ParityError(f"{Path(script).name} printed no result (exit {proc.returncode}): {proc.stdout[-500:]!r}") from e
    if "error" in out and proc.returncode:
        raise ParityError(f"TensorFlow.js could not run the model: {out['error']}")
    return out


def tfjs_predictions(tfjs_dir, paths: list[Path], backend: str = "wasm", jpeg: str = "libjpeg-turbo") -> tuple[dict, dict]:
    """path -> row from parity.mjs ({p_fake_raw, verdict, ...} or {error}), and the run's info."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(str(Path(p).resolve()) for p in paths))
        listing = f.name
    try:
        out = run_node(["--model", str(Path(tfjs_dir).resolve()), "--backend", backend, "--jpeg", jpeg, "--list", listing])
    finally:
        os.unlink(listing)
    rows = {r["path"]: r for r in out["results"]}
    return rows, {k: out[k] for k in ("backend", "tfjs", "jpeg_decoder") if k in out}


def keras_predictions(detector, paths: list[Path], batch_size: int = 32, progress: bool = False) -> dict:
    """path -> raw p(fake) from Keras on Pillow-decoded pixels, or an error message string."""
    from models.preprocessing import ImageError, load_image

    out: dict[str, float | str] = {}
    keys = [str(Path(p).resolve()) for p in paths]
    for start in range(0, len(keys), batch_size):
        batch, names = [], []
        for key in keys[start : start + batch_size]:
            try:
                batch.append(detector.prepare(load_image(key)))
                names.append(key)
            except ImageError as e:
                out[key] = f"{e.reason}: {e}"
        if batch:
            p, _ = detector.raw_scores(np.stack(batch))
            out.update({n: float(v) for n, v in zip(names, p)})
        if progress and ((start // batch_size) % 10 == 9 or start + batch_size >= len(keys)):
            print(f"  keras: {min(start + batch_size, len(keys))}/{len(keys)} images", file=sys.stderr, flush=True)
    return out


@dataclass
class ParityReport:
    tfjs_dir: str
    keras_model: str
    quantization: str
    tolerance: float
    runtime: dict
    rows: list[dict] = field(default_factory=list)  # path, p_keras, p_tfjs (raw), diff (calibrated), verdicts
    skipped: list[dict] = field(default_factory=list)  # path, reason
    problems: list[str] = field(default_factory=list)  # files or settings that do not match

    @property
    def enforced(self) -> bool:
        return self.quantization in ENFORCED

    @property
    def max_abs_diff(self) -> float:
        return max((r["diff"] for r in self.rows), default=float("nan"))

    @property
    def mean_abs_diff(self) -> float:
        return float(np.mean([r["diff"] for r in self.rows])) if self.rows else float("nan")

    @property
    def verdicts_differ(self) -> list[dict]:
        return [r for r in self.rows if r["verdict_keras"] != r["verdict_tfjs"]]

    @property
    def passed(self) -> bool:
        """True when parity holds (always True for a quantization that is only reported,
        unless files or settings do not match)."""
        if self.problems or not self.rows:
            return False
        if not self.enforced:
            return True
        return self.max_abs_diff <= self.tolerance and not self.verdicts_differ

    def as_dict(self) -> dict:
        return {
            "tfjs_dir": self.tfjs_dir, "keras_model": self.keras_model, "quantization": self.quantization,
            "runtime": self.runtime, "tolerance": self.tolerance, "enforced": self.enforced, "passed": self.passed,
            "compared": len(self.rows), "max_abs_diff": self.max_abs_diff, "mean_abs_diff": self.mean_abs_diff,
            "verdicts_differ": self.verdicts_differ, "skipped": self.skipped, "problems": self.problems, "rows": self.rows,
        }

    def format(self) -> str:
        rt = self.runtime
        lines = [f"Parity: {self.tfjs_dir} ({self.quantization}; TF.js {rt.get('tfjs', '?')} on {rt.get('backend', '?')}, "
                 f"JPEG by {rt.get('jpeg_decoder', '?')}) vs Keras {self.keras_model}"]
        lines.append(f"  images compared: {len(self.rows)}" + (f", skipped {len(self.skipped)}:" if self.skipped else ""))
        for s in self.skipped[:10]:
            lines.append(f"    {Path(s['path']).name}: {s['reason']}")
        if self.rows:
            worst = max(self.rows, key=lambda r: r["diff"])
            lines.append(f"  largest |p_fake difference|: {self.max_abs_diff:.6f} ({Path(worst['path']).name}); mean {self.mean_abs_diff:.6f}")
            differ = self.verdicts_differ
            lines.append(f"  verdicts that differ: {len(differ) or 'none'}")
            for r in differ[:10]:
                lines.append(f"    {Path(r['path']).name}: keras {r['verdict_keras']} (p={r['p_keras']:.4f}), "
                             f"tfjs {r['verdict_tfjs']} (p={r['p_tfjs']:.4f})")
        for p in self.problems:
            lines.append(f"  problem: {p}")
        rule = f"at most {self.tolerance} with every verdict equal"
        if self.enforced:
            lines.append(f"  result: {'PASS' if self.passed else 'FAIL'} ({self.quantization} must stay {rule})")
        else:
            lines.append(f"  result: reported only ({self.quantization} is not held to {rule})"
                         + ("" if self.passed else "; FAIL: " + ("; ".join(self.problems) or "nothing compared")))
        return "\n".join(lines)


def image_files(folder) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no images (JPEG or PNG) in {folder}")
    return files


def check_parity(tfjs_dir, keras_model, images=None, tolerance: float = TOLERANCE, backend: str = "wasm",
                 jpeg: str = "libjpeg-turbo", progress: bool = False) -> ParityReport:
    """Compare the converted model in `tfjs_dir` with `keras_model` (a Detector, or anything
    Detector.load takes) on `images` (a folder, a list of files, or None for the fixed set)."""
    from models.detector import Detector

    tfjs_dir = Path(tfjs_dir)
    meta = meta_mod.read(tfjs_dir)
    detector = keras_model if isinstance(keras_model, Detector) else Detector.load(keras_model)
    problems = meta_mod.verify_files(tfjs_dir, meta)
    if meta["preprocessing"]["input_size"] != detector.spec.input_size:
        problems.append(f"metadata input size {meta['preprocessing']['input_size']} is not the Keras model's {detector.spec.input_size}")
    for key in ("temperature", "fake_threshold", "real_threshold"):
        if not np.isclose(meta["calibration"][key], getattr(detector.calibration, key)):
            problems.append(f"calibration {key} is {meta['calibration'][key]} in metadata.json but "
                            f"{getattr(detector.calibration, key)} in the Keras detector; reconvert")
    if meta.get("version") != detector.version or meta.get("name") != detector.name:
        problems.append(f"converted from {meta.get('name')} {meta.get('version')}, but the Keras model is "
                        f"{detector.name} {detector.version}; reconvert it")

    with tempfile.TemporaryDirectory(prefix="unmask-parity-") as tmp:
        if images is None:
            paths = fixed_images(Path(tmp))
        elif isinstance(images, (str, Path)):
            paths = image_files(images)
        else:
            paths = [Path(p) for p in images]
        keys = [str(p.resolve()) for p in paths]
        node_paths = [p for p, k in zip(paths, keys) if p.suffix.lower() in NODE_FORMATS]
        tfjs_rows, runtime = tfjs_predictions(tfjs_dir, node_paths, backend, jpeg)
        keras = keras_predictions(detector, paths, progress=progress)

    report = ParityReport(str(tfjs_dir), str(detector.path or detector.name), meta["model"]["quantization"], tolerance, runtime,
                          problems=problems)
    for key in keys:
        kp, row = keras.get(key), tfjs_rows.get(key)
        if row is None:
            report.skipped.append({"path": key, "reason": "format not decoded by the Node side (JPEG and PNG only)"})
        elif isinstance(kp, str):
            report.skipped.append({"path": key, "reason": f"Pillow: {kp}"})
        elif "error" in row:
            report.skipped.append({"path": key, "reason": f"Node: {row['error']}"})
        else:
            report.rows.append({
                "path": key, "p_keras": kp, "p_tfjs": row["p_fake_raw"],
                "diff": abs(float(detector.calibration.calibrate(kp)) - float(detector.calibration.calibrate(row["p_fake_raw"]))),
                "verdict_keras": detector.calibration.verdict(kp)["verdict"], "verdict_tfjs": row["verdict"],
            })
    if not report.rows:
        raise ValueError("no image could be compared: every one was skipped ("
                         + "; ".join(f"{Path(s['path']).name}: {s['reason']}" for s in report.skipped[:5]) + ")")
    return report


# --- the fixed image set ------------------------------------------------------------------
# (file name, width, height, how it is saved). Sizes run from below the smallest input size to
# over twice the largest, so that both the upsampling path and the box-average path run.
FIXED_SET = [
    ("small_square.png", 96, 96, "png"),
    ("input_square.jpg", 128, 128, "jpeg95"),
    ("landscape.jpg", 320, 200, "jpeg90"),
    ("portrait_odd.png", 257, 411, "png"),
    ("wide_444.jpg", 640, 360, "jpeg75_444"),
    ("large_progressive.jpg", 1024, 768, "jpeg85_progressive"),
    ("rgba.png", 300, 300, "png_rgba"),
    ("grey.jpg", 400, 300, "jpeg_grey"),
    ("rotated_exif6.jpg", 360, 240, "jpeg_exif6"),
    ("palette.png", 200, 260, "png_palette"),
    ("tall_large.jpg", 500, 1100, "jpeg92"),
    ("face_like_fake.jpg", 512, 512, "jpeg95"),
]


def _picture(width: int, height: int, seed: int, pattern: bool) -> np.ndarray:
    """A smooth scene with a face-like oval and fine texture; `pattern` adds the periodic
    high-frequency trace that upsampling generators leave."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(width, height)
    base = np.stack([rng.uniform(60, 190) + 50 * np.sin(2 * np.pi * (xx * rng.uniform(0.5, 2) + yy * rng.uniform(0.5, 2) + c))
                     for c in range(3)], -1)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    cx, cy, r = width / 2, height / 2, min(width, height) * rng.uniform(0.25, 0.4)
    d.ellipse([cx - r, cy - 1.2 * r, cx + r, cy + 1.2 * r], fill=tuple(int(v) for v in rng.integers(150, 230, 3)))
    for ex in (cx - r / 2, cx + r / 2):
        d.ellipse([ex - r / 6, cy - r / 2.5, ex + r / 6, cy - r / 5], fill=(250, 250, 250))
        d.ellipse([ex - r / 14, cy - r / 3, ex + r / 14, cy - r / 4], fill=(40, 30, 20))
    d.arc([cx - r / 2, cy + r / 6, cx + r / 2, cy + 2 * r / 3], 20, 160, fill=(150, 40, 40), width=max(2, int(r / 15)))
    out = np.asarray(img).astype(np.float32) + rng.normal(0, 6, (height, width, 3))
    if pattern:
        out += 16 * ((np.indices((height, width)).sum(0) % 2) * 2 - 1)[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


def fixed_images(folder: Path) -> list[Path]:
    """Write the fixed parity set into `folder` (deterministic) and return the paths."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (name, w, h, how) in enumerate(FIXED_SET):
        px = _picture(w, h, seed=1000 + i, pattern=i % 2 == 1)
        img = Image.fromarray(px)
        path = folder / name
        if how == "png":
            img.save(path)
        elif how == "png_rgba":
            alpha = Image.fromarray(np.full((h, w), 255, np.uint8))  # opaque: canvases premultiply partial alpha
            img.putalpha(alpha)
            img.save(path)
        elif how == "png_palette":
            img.quantize(64, dither=Image.Dither.NONE).save(path)
        elif how == "jpeg_grey":
            img.convert("L").save(path, quality=90)
        elif how == "jpeg_exif6":
            exif = Image.Exif()
            exif[0x0112] = 6  # stored sideways; shown rotated 90 degrees clockwise
            img.save(path, quality=90, exif=exif.tobytes())
        elif how == "jpeg75_444":
            img.save(path, quality=75, subsampling=0)
        elif how == "jpeg85_progressive":
            img.save(path, quality=85, progressive=True)
        else:
            img.save(path, quality=int(how.removeprefix("jpeg")))
        paths.append(path)
    return paths


# --- command line -------------------------------------------------------------------------
def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(prog="python -m converter.parity", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tfjs_dir", metavar="TFJS_DIR", help="folder written by `unmask convert` (model.json, shards, metadata.json)")
    parser.add_argument("--keras", required=True, metavar="MODEL", help="the Keras detector: tiny, ensemble, a run folder or a .keras file")
    parser.add_argument("--images", metavar="DIR", help="compare on the JPEG/PNG files below DIR (default: the fixed generated set)")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE, help="largest |p_fake difference| allowed (default %(default)s)")
    parser.add_argument("--backend", default="wasm", choices=("wasm", "cpu"), help="TF.js backend (default %(default)s, as the extension)")
    parser.add_argument("--jpeg", default="libjpeg-turbo", choices=("libjpeg-turbo", "jpeg-js"),
                        help="JPEG decoder on the Node side (default %(default)s, which decodes as Chromium and Pillow do)")
    parser.add_argument("--json", metavar="FILE", help="also write the full report, every image's scores included, as JSON")
    args = parser.parse_args(argv)
    try:
        report = check_parity(args.tfjs_dir, args.keras, args.images, args.tolerance, args.backend, args.jpeg, progress=True)
    except (FileNotFoundError, ValueError, ParityError) as e:
        print(f"parity: error: {e}", file=sys.stderr)
        return 2
    print(report.format())
    if args.json:
        Path(args.json).write_text(json.dumps(report.as_dict(), indent=1))
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
