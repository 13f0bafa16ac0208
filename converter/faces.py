"""The face model for the extension, and the check that the browser finds the faces Python finds.

BlazeFace (models/blazeface.py, the same weights models/faces.py runs) is converted to a
TensorFlow.js graph model in OUT/face/, and metadata.json gets a "faces" section: the
contract copied from models/preprocessing.json ("faces"), the face model's output nodes and
quantization, and the size and sha256 of its files. extension/src/faces.js reads only that.

The quantization is chosen by measurement: float16 when, on the fixed images below, TF.js
(Node, wasm backend, converter/faces_parity.mjs) finds as many faces as models.faces.FaceFinder
in every image with every box and crop within BOX_TOLERANCE of the image's longer side; else
none. `unmask convert` writes it with the classifier; to (re)write only the face model and
the "faces" section of an existing conversion:

    python -m converter.faces --out extension/model [--quantize auto|none|float16] [--skip-js-checks]
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from converter import metadata as meta_mod

REPO = Path(__file__).resolve().parents[1]
FACES_JS = Path(__file__).with_name("faces_parity.mjs")
FACE_DIR = "face"  # beside the classifier's files; metadata paths are relative to OUT
QUANTIZATIONS = ("none", "float16")
# Without a measurement (--skip-js-checks): the tflite's weights are float16 already, and
# float16 measured equal to none (see conversion.measured in extension/model/metadata.json).
UNMEASURED_QUANTIZATION = "float16"
BOX_TOLERANCE = 0.02  # of the image's longer side
FACES_V1 = REPO.parent / "shared" / "data" / "faces-v1"


class FaceParityError(RuntimeError):
    """TF.js finds other faces than Python."""


def _log(msg: str):
    print(msg, flush=True)


# --- conversion ---------------------------------------------------------------------------

def convert_face_model(work: Path, *, quantize: str = "auto", js_checks: bool = True, log=_log) -> dict:
    """Convert BlazeFace into work/face/ (work is a scratch folder) and return the "faces"
    section of metadata.json for it. Raises UnsupportedOps, FaceParityError, ValueError."""
    from converter import ops
    from converter.tfjs import export_saved_model, layer_names, tfjs_convert
    from models.blazeface import build_blazeface, model_path
    from models.faces import face_contract
    from models.tensorflow_import import import_tensorflow

    if quantize not in ("auto", *QUANTIZATIONS):
        raise ValueError(f"unknown face model quantization {quantize!r}; use auto, {', '.join(QUANTIZATIONS)}")
    import_tensorflow()
    c = face_contract()
    model = build_blazeface(model_path(c.model_file))
    log(f"Converting the face model ({c.model_file}, {model.count_params():,} parameters)")
    work = Path(work)
    saved = work / "saved_model"
    export_saved_model(model, saved)
    graph_ops = ops.check_graph_ops(saved, layer_names(model))
    log(f"  graph ops: {', '.join(graph_ops)} (all in the TensorFlow.js op list)")
    roots = {q: work / q for q in QUANTIZATIONS}  # each laid out like OUT: metadata.json + face/
    for q, root in roots.items():
        tfjs_convert(saved, root / FACE_DIR, {"float16": "*"} if q == "float16" else None)
        rank1_biases(root / FACE_DIR)
        meta_mod.write(root, {"faces": faces_section(root, q)})
    sizes = {q: sum(e["bytes"] for e in faces_section(roots[q], q)["files"]) for q in QUANTIZATIONS}

    checks: dict = {"model_bytes_by_quantization": sizes}
    if js_checks:
        out = run_faces_js(roots["none"], ["--kernels"])
        if out.get("missing_kernels"):
            raise ops.UnsupportedOps({k: [] for k in out["missing_kernels"]}, "the TensorFlow.js wasm backend")
        checks["wasm_kernels"] = out["kernels_used"]
        log(f"  wasm kernels: {', '.join(out['kernels_used'])}")
        with tempfile.TemporaryDirectory(prefix="unmask-faces-") as tmp:
            paths = fixed_images(Path(tmp))
            python = python_faces(paths)
            measured = {q: compare(python, tfjs_faces(roots[q], paths)[0]) for q in QUANTIZATIONS}
        for q in QUANTIZATIONS:
            m = measured[q]
            log(f"  {q:<8} {sizes[q] / 1024:8,.1f} KB  faces equal in {m['images'] - len(m['count_differs'])}/{m['images']} images, "
                f"largest box difference {100 * m['max_box_diff']:.3f}% of the longer side, "
                f"crop {100 * m['max_crop_diff']:.3f}%: {'PASS' if m['passed'] else 'FAIL'}")
        order = ["float16", "none"] if quantize == "auto" else [quantize]
        passing = [q for q in order if measured[q]["passed"]]
        if not passing:
            raise FaceParityError(f"TF.js does not find the faces Python finds ({order[0]}): "
                                  + json.dumps({q: measured[q] for q in order})[:2000])
        chosen = passing[0]
        checks["measured"] = {q: {k: v for k, v in m.items() if k != "rows"} for q, m in measured.items()}
        checks["measured_on"] = f"{len(paths)} fixed images (converter.faces.fixed_images)"
        checks["rule"] = (f"as many faces as Python in every image, every box and crop within {BOX_TOLERANCE:.0%} "
                          "of the image's longer side; float16 when it passes, else none")
    else:
        chosen = UNMEASURED_QUANTIZATION if quantize == "auto" else quantize
        checks["measured"] = "not checked (--skip-js-checks)"
    log(f"  face model: {chosen}, {sizes[chosen] / 1024:,.1f} KB")
    section = faces_section(roots[chosen], chosen, {**_versions(), **checks})
    shutil.copytree(roots[chosen] / FACE_DIR, work / FACE_DIR)
    return section


def rank1_biases(folder: Path) -> list[str]:
    """Give fused convolutions' biases rank 1, and write model.json with sorted keys. Keras
    adds a Conv2D's bias reshaped to (1, 1, 1, filters); for BlazeFace's one-filter score head
    the converter keeps that rank-4 shape in _FusedConv2D, which the wasm kernel refuses
    ("FusedConv2D only supports rank-1 bias"). Only the manifest's shape changes, not the bytes."""
    path = Path(folder) / meta_mod.MODEL_JSON
    doc = json.loads(path.read_text())
    nodes = doc["modelTopology"]["node"]
    uses: dict = {}
    for n in nodes:
        for i in n.get("input", []):
            uses[i] = uses.get(i, 0) + 1
    weights = {w["name"]: w for g in doc["weightsManifest"] for w in g["weights"]}
    fixed = []
    for n in nodes:
        if n["op"] in ("_FusedConv2D", "FusedDepthwiseConv2dNative"):
            for name in n["input"][2:]:
                w = weights.get(name)
                if w and len(w["shape"]) > 1 and all(d == 1 for d in w["shape"][:-1]) and uses[name] == 1:
                    w["shape"] = w["shape"][-1:]
                    fixed.append(name)
    path.write_text(json.dumps(doc, sort_keys=True))  # sorted: the converter's key order varies between runs
    return fixed


def faces_section(root: Path, quantization: str, conversion: dict | None = None) -> dict:
    """metadata.json's "faces": the contract, the model in root/face/ and its files."""
    from models.preprocessing import contract

    folder = Path(root) / FACE_DIR
    model_json = meta_mod.read_model_json(folder)
    outputs = {k: v["name"].split(":")[0] for k, v in model_json["signature"]["outputs"].items()}
    if set(outputs) != {"boxes", "scores"}:
        raise meta_mod.MetadataError(f"the face model's outputs are {sorted(outputs)}, not boxes and scores")
    return {
        **contract()["faces"],
        "contract_version": contract()["version"],
        "model": {
            "file": f"{FACE_DIR}/{meta_mod.MODEL_JSON}",
            "format": "tfjs-graph-model",
            "input": next(iter(model_json["signature"]["inputs"])),
            "outputs": outputs,
            "quantization": quantization,
        },
        "conversion": conversion or {},
        "files": [{**e, "path": f"{FACE_DIR}/{e['path']}"} for e in meta_mod.file_entries(folder, meta_mod.model_files(folder))],
    }


def _versions() -> dict:
    import keras
    import tensorflow as tf

    from converter.ops import import_tensorflowjs

    return {"tool": "converter.faces", "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tensorflow": tf.__version__, "keras": keras.__version__, "tensorflowjs": import_tensorflowjs().__version__}


def install(work: Path, out: Path):
    """Replace out/face/ with work/face/."""
    dest = Path(out) / FACE_DIR
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(Path(work) / FACE_DIR, dest)


def remove(out: Path):
    """Remove out/face/ (a conversion without faces), so no unlisted file stays."""
    if (Path(out) / FACE_DIR).is_dir():
        shutil.rmtree(Path(out) / FACE_DIR)


def update(out, *, quantize: str = "auto", js_checks: bool = True, log=_log) -> dict:
    """Convert the face model into out/face/ and set the "faces" section of out/metadata.json,
    keeping every other key. Returns the section."""
    out = Path(out)
    meta = meta_mod.read(out)
    with tempfile.TemporaryDirectory(prefix="unmask-faces-") as tmp:
        section = convert_face_model(Path(tmp), quantize=quantize, js_checks=js_checks, log=log)
        install(Path(tmp), out)
    meta["faces"] = section
    meta_mod.write(out, meta)
    problems = meta_mod.verify_files(out, meta)
    if problems:
        raise meta_mod.MetadataError("; ".join(problems))
    log(f"Wrote {out / FACE_DIR} and the faces section of {out / meta_mod.METADATA_FILE}")
    return section


# --- parity: Python (models.faces) against TF.js (converter/faces_parity.mjs) ---------------

def run_faces_js(root, args: list[str], timeout: float | None = 900) -> dict:
    """Run converter/faces_parity.mjs on the conversion in `root` (metadata.json + face/)."""
    from converter.parity import run_node

    return run_node(["--root", str(Path(root).resolve()), *args], timeout=timeout, script=FACES_JS)


def tfjs_faces(root, paths: list[Path]) -> tuple[dict, dict]:
    """path -> {faces, too_small, over_limit, width, height, ms} or {error}, and run info."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(str(Path(p).resolve()) for p in paths))
    try:
        out = run_faces_js(root, ["--list", f.name])
    finally:
        Path(f.name).unlink()
    return {r["path"]: r for r in out["results"]}, {k: v for k, v in out.items() if k != "results"}


def python_faces(paths: list[Path], finder=None) -> dict:
    """path -> the same shape as tfjs_faces, from models.faces.FaceFinder on Pillow pixels."""
    from models.faces import FaceFinder, crop_image
    from models.preprocessing import load_image

    finder = finder or FaceFinder()
    out = {}
    for p in paths:
        image = load_image(p)
        found = finder.find(image)
        out[str(Path(p).resolve())] = {
            "faces": [{**f.as_dict(), "crop_mean": [round(float(v), 2) for v in crop_image(image, f.crop).reshape(-1, 3).mean(0)]}
                      for f in found.faces],
            "too_small": found.too_small, "over_limit": found.over_limit, "width": found.width, "height": found.height,
        }
    return out


def _pairs(a: list, b: list) -> list:
    """Each face of `a` with the nearest unpaired face of `b` (two faces of nearly one size
    may come in either order)."""
    left, out = list(b), []
    for f in a:
        if not left:
            break
        g = min(left, key=lambda g: max(abs(x - y) for x, y in zip(f["box"], g["box"])))
        left.remove(g)
        out.append((f, g))
    return out


def compare(python: dict, tfjs: dict, tolerance: float = BOX_TOLERANCE) -> dict:
    """Per image: equal counts (faces, too small, over the limit), and the largest box and crop
    difference as a share of the image's longer side."""
    rows = []
    for path, py in python.items():
        js = tfjs.get(path) or {"error": "not run"}
        row = {"path": path, "python": len(py["faces"]), "tfjs": len(js.get("faces", [])), "error": js.get("error")}
        longer = max(py["width"], py["height"])
        pairs = _pairs(py["faces"], js.get("faces", []))
        row["box_diff"] = max((max(abs(a - b) for a, b in zip(p["box"], j["box"])) / longer for p, j in pairs), default=0.0)
        row["crop_diff"] = max((max(abs(a - b) for a, b in zip(p["crop"], j["crop"])) / longer for p, j in pairs), default=0.0)
        row["box_diff_px"] = max((max(abs(a - b) for a, b in zip(p["box"], j["box"])) for p, j in pairs), default=0.0)
        row["score_diff"] = max((abs(p["detector_score"] - j["detector_score"]) for p, j in pairs), default=0.0)
        # The crop's pixels as cropPixels gives them (mean RGB): same region, same decoding.
        row["crop_mean_diff"] = max((max(abs(a - b) for a, b in zip(p["crop_mean"], j["crop_mean"]))
                                     for p, j in pairs if "crop_mean" in p and "crop_mean" in j), default=0.0)
        row["same_counts"] = (not row["error"] and row["python"] == row["tfjs"]
                              and (py["too_small"], py["over_limit"]) == (js.get("too_small"), js.get("over_limit")))
        if "ms" in js:
            row["ms"] = js["ms"]
        rows.append(row)
    worst = max(rows, key=lambda r: r["box_diff"], default=None)
    result = {
        "images": len(rows), "faces": sum(r["python"] for r in rows), "tolerance": tolerance,
        "count_differs": [Path(r["path"]).name for r in rows if not r["same_counts"]],
        "max_box_diff": max((r["box_diff"] for r in rows), default=0.0),
        "max_crop_diff": max((r["crop_diff"] for r in rows), default=0.0),
        "max_box_diff_px": max((r["box_diff_px"] for r in rows), default=0.0),
        "max_score_diff": round(max((r["score_diff"] for r in rows), default=0.0), 4),
        "max_crop_mean_diff": round(max((r["crop_mean_diff"] for r in rows), default=0.0), 2),
        "worst": Path(worst["path"]).name if worst and worst["box_diff"] > 0 else None,
        "rows": rows,
    }
    if any("ms" in r for r in rows):
        result["tfjs_ms_mean"] = round(float(np.mean([r["ms"] for r in rows if "ms" in r])), 1)
    result["passed"] = bool(rows) and not result["count_differs"] and max(result["max_box_diff"], result["max_crop_diff"]) <= tolerance
    return result


# --- the fixed images -----------------------------------------------------------------------

def _rgb(a: np.ndarray) -> np.ndarray:
    return np.repeat(a[..., None], 3, -1) if a.ndim == 2 else a[..., :3]


def _resized(img: np.ndarray, w: int, h: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((w, h), Image.BICUBIC))


def _paste(scene: np.ndarray, face: np.ndarray, x: int, y: int):
    """Paste `face` with its top left at (x, y); the part outside the scene is cut off."""
    h, w = face.shape[:2]
    H, W = scene.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    scene[y0:y1, x0:x1] = face[y0 - y:y1 - y, x0 - x:x1 - x]


def face_sources(faces_dir=None) -> list[np.ndarray]:
    """Four real faces, tight crops: from faces-v1 where it is found (the first one is found
    by the second view only), else the astronaut's face (scikit-image's data, which ships
    with the package)."""
    from PIL import Image
    from skimage import data

    faces_dir = Path(faces_dir) if faces_dir else FACES_V1
    picks = ["yonsei-photoshop/real/02239e3cc0025cdc.jpg", "stylegan1-ffhq/real/0273971a76f64b47.jpg", "yonsei-photoshop/real/023152f80ef263e3.jpg",
             "stylegan1-ffhq/fake/043ba17abdf9ced1.jpg"]
    if all((faces_dir / p).is_file() for p in picks):
        return [np.asarray(Image.open(faces_dir / p).convert("RGB")) for p in picks]
    face = data.astronaut()[30:280, 110:360]
    return [face, face, face[:, ::-1], face]


def fixed_images(folder: Path, faces_dir=None) -> list[Path]:
    """Write the fixed face-parity images into `folder` and return their paths: no face, one
    face (a tight crop: the second view), several, one cut by the border, one below
    min_face_side, a 3000x2000 photo, a small face in a large picture (the tiles), a greyscale
    one; JPEG and PNG."""
    from PIL import Image
    from skimage import data

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    faces = face_sources(faces_dir)
    coffee = data.coffee()

    def scene(w, h):
        return _resized(coffee, w, h).copy()

    noise = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    chart = np.full((360, 480, 3), 255, np.uint8)
    for i, v in enumerate(rng.integers(40, 320, 8)):  # a bar chart
        chart[340 - v:340, 30 + 55 * i:70 + 55 * i] = (40 + 25 * i, 90, 200 - 20 * i)

    group = scene(1200, 800)
    for face, (x, y, s) in zip(faces[1:], [(80, 200, 380), (480, 120, 330), (840, 260, 300)]):
        _paste(group, _resized(face, s, s), x, y)
    border = scene(900, 600)
    _paste(border, _resized(faces[2], 420, 420), -150, 90)
    tiny = scene(260, 200)
    _paste(tiny, _resized(faces[1], 64, 64), 100, 60)
    large = scene(3000, 2000)
    _paste(large, _resized(faces[3], 900, 900), 1700, 500)
    small_in_large = scene(1200, 800)  # found only tile by tile (the third look)
    _paste(small_in_large, _resized(faces[1], 96, 96), 610, 420)

    images = {
        "coffee.jpg": coffee, "noise.png": noise, "chart.png": chart,
        "astronaut.jpg": data.astronaut(), "camera_grey.png": _rgb(data.camera()),
        "tight_crop.jpg": faces[0], "group_1200x800.jpg": group, "cut_by_border.png": border,
        "tiny_face.png": tiny, "large_3000x2000.jpg": large, "small_in_large.jpg": small_in_large,
    }
    paths = []
    for name, img in images.items():
        path = folder / name
        if name == "camera_grey.png":
            Image.fromarray(data.camera()).save(path)  # a greyscale PNG: both decoders expand it
        else:
            Image.fromarray(img).save(path, **({"quality": 92} if name.endswith(".jpg") else {}))
        paths.append(path)
    return paths


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m converter.faces", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, metavar="DIR", help="a folder written by `unmask convert` (metadata.json in it)")
    p.add_argument("--quantize", choices=("auto", *QUANTIZATIONS), default="auto")
    p.add_argument("--skip-js-checks", action="store_true", help="do not run TensorFlow.js under Node (no measurement)")
    args = p.parse_args(argv)
    try:
        update(args.out, quantize=args.quantize, js_checks=not args.skip_js_checks)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"converter.faces: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
