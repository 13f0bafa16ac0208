"""Browser: the built extension in headless Chromium (bench/browser_bench.mjs does the timing),
with the shipped model and with the yardstick, MobileNet v1 0.25 at 224 px. Faces first, as the
extension works: the offscreen document finds the faces (BlazeFace, extension/src/faces.js,
TF.js wasm, one thread), crops each and scores it with the classifier.

Pictures: face photos from tests/synthetic.py face_image (256 px, the finder finds them) for
the feed, the right-clicks and the classifier; photos without a face (scikit-image's coffee and
rocket, cropped and tinted by seed; any in which the finder sees a face left out) for the
no-face right-clicks; and three named
pictures for the face search: a tight face crop of 256 px (a faces-v1 DFDC crop with --data,
else the astronaut's face cropped tight), which only the second, padded view finds; the
1200x800 scene with three faces and the 4000x3000 photo with one face of bench/faces.py.

The shipped model is extension/model/. Until it exists, `tiny` (models/bundled/tiny, or the
architecture with its ImageNet backbone and an untrained head) is converted here by our
converter into .tmp/bench/, and the results say so. The yardstick is
models.architectures.build_pretrained(alpha=0.25) (build_backbone + load_tfjs_weights from
../shared/weights, a new head), converted by the same converter with the same quantization.
Conversions skip the converter's TF.js checks (--skip-js-checks): the browser run itself
shows whether the model runs.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from bench.common import CACHE, ROOT, BenchError, file_hash, image_set, say, summary

SECTION = "browser"
SHIPPED = ROOT / "extension" / "model"
CONVERTER_FILES = ["models/architectures.py", "models/preprocessing.json", "models/detector.py", "models/faces.py",
                   "models/blazeface.py", "converter/export.py", "converter/tfjs.py", "converter/metadata.py", "converter/ops.py",
                   "converter/faces.py"]
RIGHT_CLICK_TARGET_MS = 100  # right-click to verdict on a picture with a face, at p95


def measure(smoke: bool, data: Path | None, work: Path) -> dict:
    runs = ({"cold": 1, "checks": 3, "loads": 1, "inferences": 5, "steps": 2, "finds": 3, "decodes": 2, "clicks": 2,
             "no_face_clicks": 2, "feeds": 1} if smoke else
            {"cold": 5, "checks": 20, "loads": 5, "inferences": 100, "steps": 10, "finds": 30, "decodes": 10, "clicks": 30,
             "no_face_clicks": 30, "feeds": 3})
    n_feed = 3 if smoke else 50
    n_click = runs["clicks"] + 1  # the first click (models loading) is kept apart
    n_infer = 2 if smoke else 8
    folder = work / "browser-images"
    folder.mkdir(parents=True, exist_ok=True)
    faces = image_set(n_feed + n_click + n_infer, None, work / "browser-source")
    names = []
    for i, p in enumerate(faces.paths):
        names.append(f"bench_{i:03d}.jpg")
        shutil.copyfile(p, folder / names[-1])
    # Spare candidates: browser_bench.mjs leaves out any in which the finder sees a (false) face.
    no_face = _no_face_pictures(runs["no_face_clicks"] + max(4, runs["no_face_clicks"] // 2), folder)
    pictures, picture_source = _named_pictures(data, folder)

    shipped = _shipped_model()
    yardstick = _yardstick_model(shipped["quantization"])
    config = {
        "models": [{"key": "shipped", "tfjs": str(shipped["dir"])}, {"key": "yardstick", "tfjs": str(yardstick["dir"])}],
        "images": str(folder), "feed": names[:n_feed], "click": names[n_feed:n_feed + n_click],
        "click_no_face": no_face, "infer": names[n_feed + n_click:],
        "pictures": [{"key": k, "name": p["name"]} for k, p in pictures.items()],
        "runs": runs, "out": str(work / "browser-raw.json"),
    }
    (work / "browser-config.json").write_text(json.dumps(config, indent=1))
    say(SECTION, "running bench/browser_bench.mjs (headless Chromium)")
    _node(work / "browser-config.json")
    raw = json.loads((work / "browser-raw.json").read_text())
    out = {
        "images": (f"{faces.source} for the feed, the right-clicks and the classifier; photos without a face, "
                   f"{NO_FACE_SIZE[0]}x{NO_FACE_SIZE[1]} (scikit-image coffee and rocket, cropped and tinted by seed; "
                   f"{len(no_face)} made, the first {runs['no_face_clicks']} in which the finder sees no face clicked), for "
                   f"the no-face right-clicks; face search: {picture_source}"),
        "feed_images": n_feed,
        "pictures": {k: p["label"] for k, p in pictures.items()},
        "right_click_target_ms": RIGHT_CLICK_TARGET_MS,
        "how": HOW,
        "models": {},
    }
    for key, info in (("shipped", shipped), ("yardstick", yardstick)):
        out["models"][key] = {"model": info["note"], "files": _files(info["dir"]), **_summarise(raw[key], pictures)}
    return out


# --- the pictures ---------------------------------------------------------------------------------
NO_FACE_SIZE = (480, 360)


def _no_face_image(seed: int) -> np.ndarray:
    """A photo without a face (scikit-image's coffee or rocket), cropped, tinted and mirrored by
    seed, NO_FACE_SIZE; browser_probe.js tells which ones the finder still sees a face in."""
    from PIL import Image
    from skimage import data as photos

    rng = np.random.default_rng(seed)
    photo = (photos.coffee, photos.rocket)[seed % 2]()
    h, w = photo.shape[:2]
    width, height = NO_FACE_SIZE
    cw = min(w, int(h * rng.uniform(0.7, 1.0) * width / height))
    ch = int(cw * height / width)
    x0, y0 = int(rng.uniform(0, w - cw + 1)), int(rng.uniform(0, h - ch + 1))
    img = photo[y0:y0 + ch, x0:x0 + cw].astype(np.float32) * rng.uniform(0.8, 1.15, 3) + rng.uniform(-20, 20, 3)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    return np.asarray(Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).resize((width, height), Image.BILINEAR))


def _no_face_pictures(n: int, folder: Path) -> list[str]:
    from tests.synthetic import write_image

    names = [f"noface_{i:03d}.jpg" for i in range(n)]
    for i, name in enumerate(names):
        write_image(folder / name, _no_face_image(9000 + i))
    return names


def _tight_crop(data: Path | None) -> tuple[Path | np.ndarray, str]:
    """A face filling a 256 px picture: the first DFDC real crop of faces-v1 (the unpadded view
    finds no face in it), else the astronaut's face (tests/synthetic.py's photo) cropped as tight."""
    if data is not None:
        with open(Path(data) / "manifest.csv", newline="") as f:
            rows = sorted(r["path"] for r in csv.DictReader(f) if r.get("source") == "dfdc" and r.get("label") == "real")
        if rows and (Path(data) / rows[0]).is_file():
            return Path(data) / rows[0], f"faces-v1 {rows[0]}"
    from PIL import Image
    from skimage import data as photos

    face = photos.astronaut()[55:175, 165:285]  # her face spans about x 177-272, y 66-161
    return np.asarray(Image.fromarray(face).resize((256, 256), Image.BILINEAR)), "the astronaut's face cropped tight (120 px to 256)"


def _named_pictures(data: Path | None, folder: Path) -> tuple[dict, str]:
    """The three pictures the face search is timed on, written into folder (JPEG, quality 95)."""
    from bench.faces import _faces
    from tests.synthetic import paste_scene
    from tests.synthetic import write_image

    tight, tight_source = _tight_crop(data)
    if isinstance(tight, Path):
        shutil.copyfile(tight, folder / "picture_tight.jpg")
    else:
        write_image(folder / "picture_tight.jpg", tight)
    faces = _faces(data)
    write_image(folder / "picture_scene.jpg", paste_scene([(faces[0], 80, 200, 260), (faces[1], 480, 120, 340),
                                                     (faces[2], 900, 300, 220)], 1200, 800))
    write_image(folder / "picture_photo.jpg", paste_scene([(faces[0], 1500, 800, 1100)], 4000, 3000))
    pictures = {
        "tight_crop": {"name": "picture_tight.jpg", "label": "tight face crop 256x256"},
        "scene_three_faces": {"name": "picture_scene.jpg", "label": "scene 1200x800, three faces"},
        "photo_one_face": {"name": "picture_photo.jpg", "label": "photo 4000x3000, one face"},
    }
    for p in pictures.values():
        p["label"] += f" ({(folder / p['name']).stat().st_size / 1024:,.0f} KB JPEG)"
    scene_faces = ("faces-v1 files (stylegan1-ffhq real, genphotos fake, yonsei-photoshop real)" if data is not None
                   else "tests/synthetic.py face_image")
    return pictures, (f"tight crop: {tight_source}; the scene and the photo as bench/faces.py makes them (faces from "
                      f"{scene_faces}, pasted on a gradient)")


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
    "probe": "an offscreen document of ours (bench/browser_probe.js, added to the build) running the extension's own "
             "detector.js, faces.js (the BlazeFace finder) and facecheck.js with the wasm setup of "
             "extension/src/offscreen.js (one thread): backend start, each model's load (fetch model.json and shards, "
             "loadGraphModel, one warm-up run); the classifier alone (detector.scores) on one face crop at a time",
    "faces": "per named picture, in the probe: decode (createImageBitmap + getImageData, as offscreen.js), then "
             "finder.find() (letterbox, BlazeFace, decode, NMS; a second, padded view when the first finds nothing) and "
             "FaceCheck.score() (find, crop each face, classify the crops in one batch), each after one untimed run; "
             "'views' is 2 when the first, unpadded view found no face",
    "offscreen": "the extension's own offscreen document through its 'check' message (decode, find the faces, crop and "
                 "classify each, thumbnail), sent from the service worker with a face picture; cold = document "
                 "created, then the first check answered (both models loaded)",
    "steps": "the offscreen document's check, step by step, in the probe document (same code as extension/src/offscreen.js) "
             "on face pictures: decode, read the pixels, find the faces, crop + classify, the 48 px thumbnail (DOM canvas "
             "toDataURL)",
    "right_click": "'Check image for deepfake' dispatched to the worker's contextMenus.onClicked listener (headless "
                   "Chromium has no native menu) until the page's overlay shows the verdict (for a picture without a "
                   "face: 'No face found'); cache cleared, a new image each click, pictures with a face and without "
                   "alternately; the models already loaded by a first click on a face picture (kept apart as first_ms); "
                   f"target: a picture with a face within {RIGHT_CLICK_TARGET_MS} ms at p95",
    "feed": "a page of N face pictures (140 px, all on screen at once); navigation start until every picture shows its "
            "badge (a badge comes only with a verdict on a face), cache cleared before each pass; main-thread stalls of "
            "the page: PerformanceObserver 'longtask' (tasks over 50 ms; none means none over 50 ms) and the largest "
            "lateness of a 10 ms setTimeout heartbeat in the page (any stall, also under 50 ms)",
}


def _summarise(m: dict, pictures: dict) -> dict:
    probe, off, clicks = m["probe"], m["offscreen"], m["clicks"]
    feeds = m["feeds"]
    right_click = summary(clicks["warm_ms"], p95=True, digits=1) if clicks["warm_ms"] else None
    faces = {}
    for key, p in probe["pictures"].items():
        faces[key] = {"picture": pictures[key]["label"], "width": p["width"], "height": p["height"],
                      "faces_found": p["faces"], "too_small": p["too_small"], "views": p["views"],
                      "decode_ms": summary(p["decode_ms"], digits=1),
                      "find_ms": summary(p["find_ms"], p95=True, digits=1),
                      "check_ms": summary(p["check_ms"], p95=True, digits=1)}
    return {
        "chromium": m["chromium"],
        "input_size": probe["model"]["input_size"],
        "face_model": {"input_size": probe["model"]["face_input_size"], "quantization": probe["model"]["face_quantization"],
                       "min_face_side": probe["model"]["min_face_side"]},
        "backend": {"probe": probe["backend"]["backend"], "simd": probe["backend"]["simd"], "tfjs": probe["backend"]["tfjs"],
                    "extension_offscreen": m["offscreen_backend"]},
        "backend_start_ms": round(probe["backend"]["ms"], 1),
        "model_load_ms": summary(probe["load_ms"], digits=1),
        "face_model_load_ms": summary(probe["face_load_ms"], digits=1),
        # The classifier alone, one face crop per call.
        "inference_ms": summary(probe["inference_ms"], p95=True, digits=2),
        "faces": faces,
        "offscreen_cold_start_ms": summary([c["create_ms"] + c["first_check_ms"] for c in off["cold"]], digits=1),
        "offscreen_check_ms": summary(off["check_ms"], p95=True, digits=1),
        "check_steps_ms": {k: summary(v, digits=2) for k, v in probe["steps"].items()},
        "right_click_first_ms": round(clicks["first_ms"], 1),
        "right_click_ms": right_click,
        "right_click_verdicts": {v: clicks["warm_verdicts"].count(v) for v in sorted(set(clicks["warm_verdicts"]))},
        "right_click_target_met": right_click["p95"] <= RIGHT_CLICK_TARGET_MS if right_click else None,
        "right_click_no_face_ms": summary(clicks["no_face_ms"], p95=True, digits=1) if clicks["no_face_ms"] else None,
        "right_click_no_face_title": clicks["no_face_title"],
        "no_face_pictures_left_out": clicks["no_face_dropped"],
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
    """The classifier's files (model.json, shards, metadata.json) and the face model's (face/)."""
    folder = Path(folder)
    meta = json.loads((folder / "metadata.json").read_text())
    names = ["model.json", *sorted(p.name for p in folder.glob("group*-shard*of*.bin")), "metadata.json"]
    sizes = {n: (folder / n).stat().st_size for n in names}
    face_dir = (folder / meta["faces"]["model"]["file"]).parent if meta.get("faces") else None
    face = ({f"{face_dir.name}/{p.name}": p.stat().st_size for p in sorted(face_dir.iterdir()) if p.is_file()}
            if face_dir and face_dir.is_dir() else {})
    return {"quantization": meta["model"].get("quantization"), "parameters": meta.get("parameters"),
            "bytes": sizes, "total_bytes": sum(sizes.values()),
            "face_quantization": (meta.get("faces") or {}).get("model", {}).get("quantization"),
            "face_bytes": face, "face_total_bytes": sum(face.values())}


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
