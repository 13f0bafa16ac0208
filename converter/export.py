"""Export a detector to a TensorFlow.js graph model, with metadata.json, for the browser
(`unmask convert`, training/commands/convert.py, says how it chooses)."""
from __future__ import annotations

import datetime as _dt
import shutil
import tempfile
from pathlib import Path

# auto also keeps every --data image's p_fake within the parity check's tolerance of Keras.
from converter.parity import TOLERANCE as MAX_AUTO_DIFF
from converter.tfjs import export_saved_model, layer_names, tfjs_convert

# mixed: float16 for the 1x1 convolution kernels only (most of a MobileNet's bytes). For tiny,
# all-float16 moved a test image's calibrated p(fake) by up to 0.029 in TF.js, mostly through
# the depthwise kernels and batch-norm constants; mixed by at most 0.007, at 54% of the bytes.
QUANTIZATIONS = ("none", "mixed", "float16", "uint8")
MAX_ACCURACY_MOVE = 0.01  # one percentage point


def quantization_map(quantization: str, weights: list[dict]) -> dict | None:
    """The tensorflowjs converter's quantization_dtype_map for `quantization`, given the
    weights ({name, shape}) of the unquantized conversion."""
    if quantization == "none":
        return None
    if quantization == "mixed":
        pointwise = [w["name"] for w in weights if len(w["shape"]) == 4 and w["shape"][:2] == [1, 1]]
        return {"float16": pointwise} if pointwise else None
    return {quantization: "*"}


class ConversionError(RuntimeError):
    """A conversion that ran but must not be shipped (parity failed, accuracy moved)."""


def _log(msg: str):
    print(msg, flush=True)


def convert(model, out, *, quantize: str | None = None, samples=None, data_note: str = "", parity_images=None,
            js_checks: bool = True, faces: bool = True, log=_log) -> dict:
    """Convert `model` (a Detector or what Detector.load takes) into `out`; returns the
    metadata written. samples: labelled images (each with .path and .label) to measure each
    quantization's accuracy on (`unmask convert --data` reads them); data_note says which they
    are. faces=False (tests) leaves out the face model and removes out/face/.
    Raises ModelNotFound, UnsupportedOps, ConversionError, FaceParityError, ValueError."""
    from converter import faces as face_mod
    from converter import metadata as meta_mod
    from converter import ops
    from converter.parity import check_parity, node_problem, NodeUnavailable
    from models.detector import Detector

    if quantize is None:
        quantize = "auto" if samples else "mixed"
    if quantize not in ("auto", *QUANTIZATIONS):
        raise ValueError(f"unknown quantization {quantize!r}; use auto, {', '.join(QUANTIZATIONS)}")
    if quantize == "auto" and not samples:
        raise ValueError(f"--quantize auto chooses by measured accuracy: give --data LABELLED_DIR, or name one of {', '.join(QUANTIZATIONS)}")
    if samples and not js_checks:
        raise ValueError("--data measures accuracy in TensorFlow.js under Node, which --skip-js-checks turns off")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder")
    if js_checks and (problem := node_problem()):
        raise NodeUnavailable(f"{problem}; or pass --skip-js-checks to convert without verifying")

    detector = model if isinstance(model, Detector) else Detector.load(model)
    log(f"Converting {detector.name} {detector.version} ({detector.architecture}, {detector.model.count_params():,} parameters)")

    with tempfile.TemporaryDirectory(prefix="unmask-convert-") as tmp:
        tmp = Path(tmp)
        saved = tmp / "saved_model"
        graph_model, folded = _fold_batch_norms(detector.model, log)
        log("  exporting a SavedModel (keras ExportArchive, inference mode)")
        try:
            export_saved_model(graph_model, saved)
        except Exception as e:  # Keras raises many kinds; say which step failed
            raise ValueError(f"Keras could not export {detector.name} as a SavedModel: {e}") from e
        names = layer_names(detector.model)
        graph_ops = ops.check_graph_ops(saved, names)
        log(f"  graph ops: {', '.join(graph_ops)} (all in the TensorFlow.js op list)")

        dirs = {q: tmp / q for q in QUANTIZATIONS}
        tfjs_convert(saved, dirs["none"], None)  # the others are mapped from its weights
        weights = meta_mod.weight_specs(dirs["none"])
        for q in QUANTIZATIONS:
            if q != "none":
                tfjs_convert(saved, dirs[q], quantization_map(q, weights))
            meta_mod.write(dirs[q], meta_mod.build(detector, dirs[q], q))
        sizes = {q: sum(e["bytes"] for e in meta_mod.file_entries(dirs[q], meta_mod.model_files(dirs[q]))) for q in QUANTIZATIONS}

        checks: dict = {"folded_batch_norms": folded}
        if js_checks:
            kernels = ops.check_wasm_kernels(dirs["none"], layer_names=names)
            log(f"  wasm kernels: {', '.join(kernels)} (all registered by @tensorflow/tfjs-backend-wasm)")
            checks["wasm_kernels"] = kernels
        else:
            checks["wasm_kernels"] = "not checked (--skip-js-checks)"

        accuracy = _measure_accuracy(detector, samples, dirs, data_note, log) if samples else None
        candidates = _candidates(quantize, sizes, accuracy)
        _print_table(sizes, accuracy, candidates[0], log)

        chosen = candidates[0]
        if js_checks:
            # The first candidate (smallest first) whose parity check passes is written.
            for i, chosen in enumerate(candidates):
                log(f"  parity check of {chosen} against Keras")
                report = check_parity(dirs[chosen], detector, parity_images)
                log("  " + report.format().replace("\n", "\n  "))
                if report.passed:
                    break
                if i + 1 == len(candidates):
                    raise ConversionError(f"parity failed for {chosen}; nothing was written to {out}:\n{report.format()}")
                log(f"  parity failed for {chosen}: trying {candidates[i + 1]}")
            checks["parity"] = {k: v for k, v in report.as_dict().items() if k not in ("rows", "tfjs_dir", "keras_model")}
            checks["parity"]["images"] = "fixed generated set" if parity_images is None else str(parity_images)
        else:
            checks["parity"] = "not checked (--skip-js-checks)"

        conversion = _conversion_info(sizes, accuracy, checks)
        metadata = meta_mod.build(detector, dirs[chosen], chosen, conversion)
        if faces:
            metadata["faces"] = face_mod.convert_face_model(tmp / "faces", js_checks=js_checks, log=log)
        meta_mod.write(dirs[chosen], metadata)
        if faces:
            face_mod.install(tmp / "faces", out)
        else:
            face_mod.remove(out)
        _install(dirs[chosen], out, meta_mod.model_files(dirs[chosen]) + [meta_mod.METADATA_FILE])

    files = metadata["files"] + (metadata.get("faces") or {}).get("files", [])
    total = sum(e["bytes"] for e in files) + (out / meta_mod.METADATA_FILE).stat().st_size
    log(f"Wrote {out}: {chosen}, {len(files) + 1} files, {total / 1024:,.1f} KB in all")
    return metadata


def _fold_batch_norms(model, log):
    """The model to export: with the depthwise convolutions' batch norms folded in
    (converter/fold.py), or as it is when folding fails, since folding only saves time.
    Returns (model, how many were folded)."""
    from converter.fold import fold_batch_norms

    try:
        folded, n = fold_batch_norms(model)
    except Exception as e:  # a layer Keras cannot clone; the unfolded graph is still correct
        log(f"  batch norms not folded ({type(e).__name__}: {e}); converting the model as it is")
        return model, 0
    if n:
        log(f"  folded {n} batch norms into the depthwise convolutions before them")
    return folded, n


def _measure_accuracy(detector, samples, dirs: dict, note: str, log) -> dict:
    """Accuracy (p_fake >= 0.5 called fake) of Keras and of each conversion in TF.js, on the
    images that every one of them could read."""
    import numpy as np

    from converter.parity import keras_predictions, tfjs_predictions

    paths = [Path(s.path) for s in samples]
    labels = {str(p.resolve()): s.label for p, s in zip(paths, samples)}
    log(f"  Keras on {len(paths):,} images (Pillow decoding)")
    keras = keras_predictions(detector, paths, progress=True)
    tfjs, runtime = {}, {}
    for q, d in dirs.items():
        log(f"  TF.js {q} on {len(paths):,} images")
        tfjs[q], runtime = tfjs_predictions(d, paths)
    usable = [k for k in labels if isinstance(keras.get(k), float) and all("p_fake_raw" in tfjs[q].get(k, {}) for q in dirs)]
    if not usable:
        raise ValueError("no labelled image could be read by both Pillow and the TF.js side; see the files in --data")
    y = np.array([labels[k] for k in usable])
    result = {
        "data": note, "images": len(usable), "unreadable": len(labels) - len(usable),
        "rule": "p_fake >= 0.5 is fake",
        "measured_with": f"the converted graph in TensorFlow.js {runtime.get('tfjs')} under Node on the {runtime.get('backend')} "
                         f"backend, files decoded by {runtime.get('jpeg_decoder')} (JPEG) / pngjs (PNG) and prepared by "
                         "extension/src/preprocess.js; Keras on Pillow-decoded files",
        "keras": float(np.mean(np.array([keras[k] >= 0.5 for k in usable]) == y)),
    }
    keras_p = np.array([keras[k] for k in usable])
    keras_verdicts = detector.calibration.verdicts(keras_p)
    for q in dirs:
        p = np.array([tfjs[q][k]["p_fake_raw"] for k in usable])
        result[q] = float(np.mean((p >= 0.5) == y))
        # Parity on these images too (the calibrated p_fake, as converter.parity compares).
        result[f"{q}_max_abs_diff"] = float(np.max(np.abs(detector.calibration.calibrate(p) - detector.calibration.calibrate(keras_p))))
        result[f"{q}_verdicts_differ"] = int(sum(tfjs[q][k]["verdict"] != v for k, v in zip(usable, keras_verdicts)))
    return result


def _candidates(quantize: str, sizes: dict, accuracy: dict | None) -> list[str]:
    """The quantizations that may be written, in order of preference: for auto, those that
    keep accuracy within one point of Keras and every image's p_fake within MAX_AUTO_DIFF of
    it, smallest first; else the one asked for, unless it moves accuracy by more than a point."""
    def moved(q):
        return abs(accuracy[q] - accuracy["keras"])

    if quantize == "auto":
        keeps = [q for q in sorted(QUANTIZATIONS, key=sizes.get)
                 if moved(q) <= MAX_ACCURACY_MOVE + 1e-12 and accuracy[f"{q}_max_abs_diff"] <= MAX_AUTO_DIFF]
        if not keeps:
            raise ConversionError("every quantization, none included, moves accuracy by more than one point from Keras "
                                  f"or some p_fake by more than {MAX_AUTO_DIFF}: the TF.js pipeline does not match Python; "
                                  "run `python -m converter.parity` to find out why")
        return keeps
    if accuracy and moved(quantize) > MAX_ACCURACY_MOVE + 1e-12:
        raise ConversionError(f"{quantize} moves accuracy by {100 * moved(quantize):.2f} points (more than 1) on "
                              f"{accuracy['images']:,} images, so it is not written; use --quantize auto")
    return [quantize]


def _print_table(sizes: dict, accuracy: dict | None, first_choice: str, log):
    head = f"  {'quantization':<14}{'model size':>12}"
    if accuracy:
        head += f"{'TF.js accuracy':>17}{'vs Keras':>11}{'max |dp|':>10}{'verdicts differ':>17}"
    log(head)
    for q in QUANTIZATIONS:
        line = f"  {q:<14}{sizes[q] / 1024:>9,.1f} KB"
        if accuracy:
            move = 100 * (accuracy[q] - accuracy["keras"])
            line += f"{100 * accuracy[q]:>16.2f}%{move:>+8.2f} pt{accuracy[f'{q}_max_abs_diff']:>10.4f}{accuracy[f'{q}_verdicts_differ']:>17,}"
            if abs(move) > 100 * MAX_ACCURACY_MOVE + 1e-9:
                line += "  moves accuracy by more than 1 point"
            elif accuracy[f"{q}_max_abs_diff"] > MAX_AUTO_DIFF:
                line += f"  moves some p_fake by more than {MAX_AUTO_DIFF} (auto skips it)"
        if q == first_choice:
            line += "  <- chosen"
        log(line)
    if accuracy:
        log(f"  Keras: {100 * accuracy['keras']:.2f}% on {accuracy['images']:,} images ({accuracy['data']}"
            + (f"; {accuracy['unreadable']} unreadable skipped" if accuracy["unreadable"] else "") + ")")
        log(f"  measured with {accuracy['measured_with']}; |dp| and verdicts compare each image's p_fake with Keras's")
    else:
        log("  (accuracy not measured: give --data LABELLED_DIR)")


def _conversion_info(sizes: dict, accuracy: dict | None, checks: dict) -> dict:
    import keras
    import tensorflow as tf

    from converter.ops import import_tensorflowjs

    tensorflowjs = import_tensorflowjs()
    return {
        "tool": "unmask convert",
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tensorflow": tf.__version__, "keras": keras.__version__, "tensorflowjs": tensorflowjs.__version__,
        "model_bytes_by_quantization": sizes,
        "accuracy": accuracy,
        **checks,
    }


def _install(src: Path, out: Path, names: list[str]):
    """Copy the conversion into `out`, removing the files of an earlier one there."""
    out.mkdir(parents=True, exist_ok=True)
    stale = [p for p in out.glob("group*-shard*of*.bin")] + [out / "model.json", out / "metadata.json"]
    for p in stale:
        if p.is_file() and p.name not in names:
            p.unlink()
    for name in names:
        shutil.copyfile(src / name, out / name)

