"""metadata.json: what the browser needs beside the weights, each part read from where it is
defined (never re-typed here):

- preprocessing: models.preprocessing (the one contract, models/preprocessing.json);
- calibration and thresholds: the detector's models.calibration.Calibration;
- name, version, architecture and training summary: the detector's detector.json;
- model: the p(fake) output node of the converted model.json, and the quantization;
- files: the size and sha256 of every file written beside it (metadata.json cannot hold its own);
- faces: the face model in face/ and the faces contract (converter/faces.py writes it).

extension/src/detector.js reads it (and checks `format` and `format_version`).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

FORMAT = "unmask-detector-tfjs"
FORMAT_VERSION = 1
METADATA_FILE = "metadata.json"
MODEL_JSON = "model.json"

# The parts of detector.info["training"] worth shipping; the rest (argv, local paths) is not.
TRAINING_KEYS = ("layout", "counts", "labels", "skipped", "split_sizes", "seed", "epochs_run", "backend", "settings")


class MetadataError(ValueError):
    pass


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_model_json(folder) -> dict:
    path = Path(folder) / MODEL_JSON
    if not path.is_file():
        raise FileNotFoundError(f"no {MODEL_JSON} in {folder}: give a folder written by `unmask convert`")
    try:
        doc = json.loads(path.read_text())
        doc["modelTopology"], doc["weightsManifest"]
    except (ValueError, KeyError, TypeError) as e:
        raise MetadataError(f"{path} is not a TensorFlow.js graph model ({e}); reconvert with `unmask convert`") from e
    return doc


def model_files(folder) -> list[str]:
    """model.json and the weight shards it names, relative to `folder`."""
    doc = read_model_json(folder)
    return [MODEL_JSON] + [p for group in doc["weightsManifest"] for p in group["paths"]]


def weight_specs(folder) -> list[dict]:
    """Every weight in model.json's manifest: name, shape, dtype (and quantization)."""
    return [w for group in read_model_json(folder)["weightsManifest"] for w in group["weights"]]


def file_entries(folder, names: list[str]) -> list[dict]:
    folder = Path(folder)
    return [{"path": n, "bytes": (folder / n).stat().st_size, "sha256": sha256(folder / n)} for n in names]


def p_fake_output(model_json: dict) -> dict:
    """The signature key and node of the p(fake) output: the only output, or the one named
    p_fake (the ensemble also outputs its members' scores)."""
    outputs = (model_json.get("signature") or {}).get("outputs") or {}
    if not outputs:
        raise MetadataError("model.json has no signature outputs; export the model with keras Model.export")
    key = "p_fake" if "p_fake" in outputs else (next(iter(outputs)) if len(outputs) == 1 else None)
    if key is None:
        raise MetadataError(f"cannot tell which output is p(fake) among {sorted(outputs)}")
    name = outputs[key]["name"]
    return {"key": key, "output": name.split(":")[0] if name.endswith(":0") else name}


def training_summary(info: dict) -> dict | None:
    training = info.get("training")
    if not isinstance(training, dict):
        return None
    out = {k: training[k] for k in TRAINING_KEYS if k in training}
    if training.get("data"):
        out["data"] = Path(str(training["data"])).name  # the folder's name, not a local path
    return out


def build(detector, tfjs_dir, quantization: str, conversion: dict | None = None) -> dict:
    """The metadata for the converted model in `tfjs_dir` (files already written there)."""
    from models.preprocessing import contract

    model_json = read_model_json(tfjs_dir)
    out = p_fake_output(model_json)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": detector.name,
        "version": detector.version,
        "architecture": detector.architecture,
        "parameters": int(detector.model.count_params()),
        "model": {
            "file": MODEL_JSON,
            "format": "tfjs-graph-model",
            "input": next(iter(model_json["signature"]["inputs"])),
            "output": out["output"],
            "output_key": out["key"],
            "quantization": quantization,
        },
        "labels": {"output": "p_fake", "means": "probability that the image is fake", "0": "real", "1": "fake"},
        "preprocessing": {**detector.spec.as_dict(), "contract_version": contract()["version"]},
        "calibration": detector.calibration.to_dict(),
        "verdicts": {
            "fake": "calibrated p_fake >= calibration.fake_threshold",
            "real": "calibrated p_fake <= calibration.real_threshold",
            "uncertain": "otherwise",
            "calibrated": "sigmoid(logit(p_fake_raw) / calibration.temperature)",
        },
        # The cascade's escalation band, when `make models` chose one (extension/src/verdict.js escalates).
        "cascade": detector.info.get("cascade"),
        "training": training_summary(detector.info),
        "conversion": conversion or {},
        "files": file_entries(tfjs_dir, model_files(tfjs_dir)),
    }
    # The video calibration (`unmask calibrate --video`), when fitted: the extension's video checks use it.
    if detector.info.get("video_calibration"):
        meta["video_calibration"] = detector.info["video_calibration"]
    return meta


def write(folder, metadata: dict) -> Path:
    path = Path(folder) / METADATA_FILE
    path.write_text(json.dumps(metadata, indent=2) + "\n")
    return path


def read(folder) -> dict:
    path = Path(folder) / METADATA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {METADATA_FILE} in {folder}: give a folder written by `unmask convert`")
    try:
        meta = json.loads(path.read_text())
    except ValueError as e:
        raise MetadataError(f"{path} is not valid JSON ({e}); reconvert with `unmask convert`") from e
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise MetadataError(f"{path} is not an Unmask detector metadata file (format {meta.get('format')!r}, "
                            f"version {meta.get('format_version')!r}); reconvert with `unmask convert`")
    return meta


def verify_files(folder, metadata: dict) -> list[str]:
    """Problems with the files metadata.json lists (missing, changed size or sha256), the
    classifier's and the face model's ("faces", in face/); [] if none."""
    folder = Path(folder)
    faces = metadata.get("faces") or {}
    entries = list(metadata.get("files", [])) + list(faces.get("files", []))
    problems = []
    for entry in entries:
        path = folder / entry["path"]
        if not path.is_file():
            problems.append(f"{entry['path']} is missing")
        elif path.stat().st_size != entry["bytes"]:
            problems.append(f"{entry['path']} is {path.stat().st_size} bytes, metadata says {entry['bytes']}")
        elif sha256(path) != entry["sha256"]:
            problems.append(f"{entry['path']} has changed since conversion (sha256 differs)")
    listed = {e["path"] for e in entries}
    names = model_files(folder)
    if faces.get("model"):
        sub = Path(faces["model"]["file"]).parent
        names += [(sub / n).as_posix() for n in model_files(folder / sub)] if (folder / faces["model"]["file"]).is_file() else []
    for name in names:
        if name not in listed:
            problems.append(f"{name} is not listed in {METADATA_FILE}")
    return problems
