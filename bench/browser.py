"""Browser: the built extension in headless Chromium (bench/browser_bench.mjs does the timing),
with the shipped model and with the yardstick, MobileNet v1 0.25 at 224 px.

The shipped model is extension/model/. Until it exists, `tiny` (models/bundled/tiny, or the
architecture with its ImageNet backbone and an untrained head) is converted here by our
converter into .tmp/bench/, and the results say so. The yardstick is
models.architectures.build_pretrained(alpha=0.25) (build_backbone + load_tfjs_weights from
../shared/weights, a new head), converted by the same converter with the same quantization.
Conversions skip the converter's TF.js checks (--skip-js-checks): the browser run itself
shows whether the model runs.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench.common import CACHE, ROOT, BenchError, file_hash, image_set, say, summary

SECTION = "browser"
SHIPPED = ROOT / "extension" / "model"
CONVERTER_FILES = ["models/architectures.py", "models/preprocessing.json", "models/detector.py",
                   "converter/export.py", "converter/metadata.py", "converter/ops.py"]


def measure(smoke: bool, data: Path | None, work: Path) -> dict:
    runs = ({"cold": 1, "checks": 3, "loads": 1, "inferences": 5, "steps": 2, "clicks": 1, "feeds": 1} if smoke else
            {"cold": 5, "checks": 20, "loads": 5, "inferences": 100, "steps": 10, "clicks": 10, "feeds": 3})
    n_feed = 3 if smoke else 50
    n_click = runs["clicks"] + 1
    n_infer = 2 if smoke else 8
    images = image_set(n_feed + n_click + n_infer, data, work / "browser-source")
    folder = work / "browser-images"
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i, p in enumerate(images.paths):
        names.append(f"bench_{i:03d}.jpg")
        shutil.copyfile(p, folder / names[-1])

    shipped = _shipped_model()
    yardstick = _yardstick_model(shipped["quantization"])
    config = {
        "models": [{"key": "shipped", "tfjs": str(shipped["dir"])}, {"key": "yardstick", "tfjs": str(yardstick["dir"])}],
        "images": str(folder), "feed": names[:n_feed], "click": names[n_feed:n_feed + n_click],
        "infer": names[n_feed + n_click:], "runs": runs, "out": str(work / "browser-raw.json"),
    }
    (work / "browser-config.json").write_text(json.dumps(config, indent=1))
    say(SECTION, "running bench/browser_bench.mjs (headless Chromium)")
    _node(work / "browser-config.json")
    raw = json.loads((work / "browser-raw.json").read_text())
    out = {
        "images": images.source,
        "feed_images": n_feed,
        "how": HOW,
        "models": {},
    }
    for key, info in (("shipped", shipped), ("yardstick", yardstick)):
        out["models"][key] = {"model": info["note"], "files": _files(info["dir"]), **_summarise(raw[key])}
    return out


def _node(config: Path) -> None:
    """Run bench/browser_bench.mjs, passing its progress through; its error line becomes ours."""
    try:
        proc = subprocess.Popen(["node", str(ROOT / "bench" / "browser_bench.mjs"), str(config)], cwd=ROOT,
                                stderr=subprocess.PIPE, text=True)
    except OSError as e:
        raise BenchError(f"cannot run node ({e}); install Node 20 and run `npm ci` (make node-deps)") from e
    errors = []
    for line in proc.stderr:
        sys.stderr.write(line)
        if "error:" in line or errors:
            errors.append(line.rstrip())
    if proc.wait() != 0:
        detail = "\n".join(errors[:20]) or "no message; see the lines above"
        raise BenchError(f"bench/browser_bench.mjs failed ({proc.returncode}): {detail}")


HOW = {
    "chromium": "headless Chromium (--headless=new, --disable-gpu) with the extension built by extension/build.mjs; "
                "pages and images served over HTTPS as www.reddit.com and i.redd.it (a site the extension badges "
                "by default), mapped to 127.0.0.1 with --host-resolver-rules",
    "probe": "an offscreen document of ours (bench/browser_probe.js, added to the build) running extension/src/detector.js "
             "with the wasm setup of extension/src/offscreen.js: backend start, model load (fetch model.json and "
             "shards, loadGraphModel, one warm-up run), detector.scores() on one decoded image",
    "offscreen": "the extension's own offscreen document through its 'check' message (decode, preprocess, model, "
                 "thumbnail), sent from the service worker; cold = document created, then the first check answered",
    "steps": "the offscreen document's check, step by step, in the probe document (same code as extension/src/offscreen.js); "
             "thumbnail_todataurl_ms is an alternative (a DOM canvas) for comparison, not what the extension does",
    "right_click": "'Check image for deepfake' dispatched to the worker's contextMenus.onClicked listener (headless "
                   "Chromium has no native menu) until the page's overlay shows the verdict; cache cleared, a new "
                   "image each click, the model already loaded by a first click (kept apart as first_ms)",
    "feed": "a page of N images (140 px, all on screen at once); navigation start until every badge shows a verdict, "
            "cache cleared before each pass; main-thread stalls of the page: PerformanceObserver 'longtask' (tasks "
            "over 50 ms; none means none over 50 ms) and the largest lateness of a 10 ms setTimeout heartbeat in the "
            "page (any stall, also under 50 ms)",
}


def _summarise(m: dict) -> dict:
    probe, off, clicks = m["probe"], m["offscreen"], m["clicks"]
    feeds = m["feeds"]
    return {
        "chromium": m["chromium"],
        "input_size": probe["model"]["input_size"],
        "backend": {"probe": probe["backend"]["backend"], "simd": probe["backend"]["simd"], "tfjs": probe["backend"]["tfjs"],
                    "extension_offscreen": m["offscreen_backend"]},
        "backend_start_ms": round(probe["backend"]["ms"], 1),
        "model_load_ms": summary(probe["load_ms"], digits=1),
        "inference_ms": summary(probe["inference_ms"], p95=True, digits=2),
        "offscreen_cold_start_ms": summary([c["create_ms"] + c["first_check_ms"] for c in off["cold"]], digits=1),
        "offscreen_check_ms": summary(off["check_ms"], p95=True, digits=1),
        "check_steps_ms": {k: summary(v, digits=2) for k, v in probe["steps"].items()},
        "right_click_first_ms": round(clicks["first_ms"], 1),
        "right_click_ms": summary(clicks["warm_ms"], digits=1) if clicks["warm_ms"] else None,
        "feed_pass_ms": summary([f["pass_ms"] for f in feeds], digits=1),
        "feed_first_badge_ms": summary([f["first_badge_ms"] for f in feeds], digits=1),
        "feed_badges": [f["badges"] for f in feeds],
        # Per pass: the longest task over 50 ms, or None when the pass had none.
        "feed_longest_task_ms": [round(max(f["longtasks"]), 1) if f["longtasks"] else None for f in feeds],
        "feed_long_tasks": [len(f["longtasks"]) for f in feeds],
        "feed_longtask_observed": all(f["longtask_supported"] for f in feeds),
        "feed_main_thread_stall_ms": summary([f["max_timer_lag_ms"] for f in feeds], digits=1),
        "extension_bytes": m["extension"]["bytes"],
        "image_fetches": m.get("image_fetches"),
    }


def _files(folder: Path) -> dict:
    meta = json.loads((Path(folder) / "metadata.json").read_text())
    names = ["model.json", *sorted(p.name for p in Path(folder).glob("group*-shard*of*.bin")), "metadata.json"]
    sizes = {n: (Path(folder) / n).stat().st_size for n in names}
    return {"quantization": meta["model"].get("quantization"), "parameters": meta.get("parameters"),
            "bytes": sizes, "total_bytes": sum(sizes.values())}


# --- the models ---------------------------------------------------------------------------------
def _shipped_model() -> dict:
    if (SHIPPED / "metadata.json").is_file():
        meta = json.loads((SHIPPED / "metadata.json").read_text())
        q = meta["model"].get("quantization")
        return {"dir": SHIPPED, "quantization": q,
                "note": f"the shipped model, extension/model ({meta.get('name')} {meta.get('version')}, {q})"}
    from models.detector import BUNDLED_DIR, MODEL_FILE

    bundled = BUNDLED_DIR / "tiny" / MODEL_FILE
    key = file_hash(*(ROOT / f for f in CONVERTER_FILES), bundled if bundled.is_file() else "no-bundled-tiny")
    folder = CACHE / f"browser-tiny-{key}"
    if bundled.is_file():
        note = (f"extension/model does not exist yet: models/bundled/tiny converted by our converter "
                f"(float16, --skip-js-checks) into {folder}")
    else:
        note = ("STAND-IN: extension/model and models/bundled/tiny do not exist yet: the tiny architecture (MobileNet v1 "
                "0.25 at 160 px, ImageNet weights from ../shared/weights, untrained head) converted by our converter "
                f"(float16, --skip-js-checks) into {folder}; speed and size are those of the shipped architecture")
    if not (folder / "metadata.json").is_file():
        def detector():
            from models import architectures
            from models.calibration import Calibration
            from models.detector import Detector

            if bundled.is_file():
                return Detector.load("tiny")
            return Detector(architectures.build_tiny(), "tiny", Calibration(), {"name": "tiny", "version": "bench-untrained-head"})

        _convert(detector, folder, "float16")
    return {"dir": folder, "quantization": "float16", "note": note}


def _yardstick_model(quantization: str) -> dict:
    key = file_hash(*(ROOT / f for f in CONVERTER_FILES), quantization)
    folder = CACHE / f"browser-yardstick-{key}"
    if not (folder / "metadata.json").is_file():
        def detector():
            import keras

            from models import architectures
            from models.calibration import Calibration
            from models.detector import Detector
            from models.preprocessing import InputSpec, input_spec

            # Fixed at 224 px whatever the contract's sizes are now: a yardstick must not move.
            spec = InputSpec(224, input_spec("pretrained").scale, input_spec("pretrained").offset)
            inputs = keras.Input((224, 224, 3))
            x = keras.layers.Rescaling(spec.scale, spec.offset)(inputs)
            x = architectures.build_backbone("mobilenet", 0.25, "shared", input_size=224)(x)
            x = keras.layers.GlobalAveragePooling2D()(x)
            model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x), name="yardstick")
            return Detector(model, "pretrained", Calibration(),
                            {"name": "mobilenet_v1_0.25_224", "version": "yardstick", "preprocessing": spec.as_dict()})

        _convert(detector, folder, quantization)
    return {"dir": folder, "quantization": quantization,
            "note": ("MobileNet v1 0.25 at 224 px (ImageNet weights from ../shared/weights through "
                     "build_backbone/load_tfjs_weights, global pooling and a 1-unit head), converted by our converter "
                     f"({quantization}, --skip-js-checks)")}


def _convert(make_detector, folder: Path, quantization: str) -> None:
    from converter.export import convert

    say(SECTION, f"converting into {folder}")
    tmp = folder.with_name(folder.name + f".partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        detector = make_detector()
    except FileNotFoundError as e:
        raise BenchError(f"cannot build the model to convert: {e}") from e
    convert(detector, tmp, quantize=quantization, js_checks=False, log=lambda m: say(SECTION, m))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
