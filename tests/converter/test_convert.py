"""`unmask convert`: the files it writes, their metadata, and the models it refuses."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from tests.converter.helpers import node_or_skip

pytestmark = pytest.mark.slow


def test_each_quantization_writes_a_graph_model_with_true_metadata(converted, tiny_detector):
    from models.preprocessing import contract, input_spec

    sizes = {}
    for q, (folder, meta, lines) in converted.items():
        on_disk = json.loads((folder / "metadata.json").read_text())
        assert on_disk == meta
        assert meta["format"] == "unmask-detector-tfjs" and meta["format_version"] == 1
        assert (meta["name"], meta["version"], meta["architecture"]) == ("tiny", "test", "tiny")
        assert meta["model"]["quantization"] == q
        assert meta["preprocessing"] == {**input_spec("tiny").as_dict(), "contract_version": contract()["version"]}
        assert meta["calibration"] == tiny_detector.calibration.to_dict()
        assert meta["labels"]["1"] == "fake" and meta["labels"]["0"] == "real"

        # Every file written besides metadata.json is listed with its true size and sha256.
        model_json = json.loads((folder / "model.json").read_text())
        shards = [p for g in model_json["weightsManifest"] for p in g["paths"]]
        assert sorted(e["path"] for e in meta["files"]) == sorted(["model.json", *shards])
        assert sorted(p.name for p in folder.iterdir()) == sorted(["model.json", "metadata.json", *shards] + (["face"] if q == "mixed" else []))
        for e in meta["files"]:
            data = (folder / e["path"]).read_bytes()
            assert e["bytes"] == len(data)
            assert e["sha256"] == hashlib.sha256(data).hexdigest()

        # The float weights are stored at the quantization asked for (int32 constants stay).
        dtypes = {w.get("quantization", {}).get("dtype", w["dtype"]) for g in model_json["weightsManifest"] for w in g["weights"]
                  if w["dtype"] == "float32"}
        assert dtypes == {"none": {"float32"}, "mixed": {"float32", "float16"}}.get(q, {q}), dtypes
        if q == "mixed":  # float16 exactly for the 1x1 convolution kernels
            for w in (w for g in model_json["weightsManifest"] for w in g["weights"] if w["dtype"] == "float32"):
                pointwise = len(w["shape"]) == 4 and w["shape"][:2] == [1, 1]
                assert (w.get("quantization", {}).get("dtype") == "float16") == pointwise, w
        sizes[q] = sum(e["bytes"] for e in meta["files"])

        # The size table printed every quantization, and which one was written.
        table = "\n".join(lines)
        for other in ("none", "mixed", "float16", "uint8"):
            assert other in table
        assert f"{q}" in next(ln for ln in lines if "<- chosen" in ln)
        assert meta["conversion"]["model_bytes_by_quantization"][q] == sizes[q]
        assert meta["conversion"]["parity"]["passed"] is True
        # Each depthwise block is one fused kernel: batch norm folded in (converter/fold.py), Relu6 fused.
        assert meta["conversion"]["folded_batch_norms"] == 13
        graph_ops = [node["op"] for node in model_json["modelTopology"]["node"]]
        assert graph_ops.count("FusedDepthwiseConv2dNative") == 13
        assert "DepthwiseConv2dNative" not in graph_ops and "Relu6" not in graph_ops
        assert "FusedDepthwiseConv2D" in meta["conversion"]["wasm_kernels"]
    assert sizes["none"] > sizes["mixed"] > sizes["float16"] > sizes["uint8"]


def test_convert_writes_the_face_model_and_its_section(converted):
    """The shipped conversion (mixed) carries face/ and metadata.faces; faces=False none."""
    from converter import metadata
    from models.preprocessing import contract

    folder, meta, lines = converted["mixed"]
    faces = meta["faces"]
    assert {k: faces[k] for k in contract()["faces"]} == contract()["faces"]
    assert faces["model"]["file"] == "face/model.json" and faces["model"]["quantization"] in ("float16", "none")
    assert sorted(e["path"] for e in faces["files"]) == sorted(f"face/{p.name}" for p in (folder / "face").iterdir())
    assert all(not e["path"].startswith("face/") for e in meta["files"]), "the classifier's files stay as they were"
    assert metadata.verify_files(folder, meta) == []
    assert faces["conversion"]["measured"][faces["model"]["quantization"]]["passed"] is True
    assert any("face model:" in ln for ln in lines)
    assert "faces" not in converted["none"][1] and not (converted["none"][0] / "face").exists()


def test_training_summary_is_copied_from_the_detector(tmp_path):
    """Only the summary travels: not the local data path or the command line."""
    from converter.export import convert
    from tests.synthetic import small_detector

    det = small_detector(tmp_path / "det", "tiny", steps=0)
    det.save(tmp_path / "det", training={"data": "/home/someone/faces-v1", "layout": "manifest", "labels": {"real": 5, "fake": 7},
                                          "split_sizes": {"train": {"total": 10}}, "seed": 3, "args": {"data": "/home/someone"}})
    meta = convert(tmp_path / "det", tmp_path / "out", quantize="float16", js_checks=False, faces=False, log=lambda _: None)
    assert meta["conversion"]["parity"] == "not checked (--skip-js-checks)"
    assert meta["training"] == {"data": "faces-v1", "layout": "manifest", "labels": {"real": 5, "fake": 7},
                                "split_sizes": {"train": {"total": 10}}, "seed": 3}


def test_the_escalation_band_chosen_by_the_bundle_reaches_the_extension_metadata(tmp_path):
    from converter.export import convert
    from tests.synthetic import small_detector
    from training.bundle import record_cascade, summarize_cascade

    small_detector(tmp_path / "tiny", "tiny", steps=0)
    (tmp_path / "ensemble").mkdir()
    (tmp_path / "ensemble" / "detector.json").write_text(json.dumps({"name": "ensemble", "version": "v7"}))
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    server = np.clip(0.2 + 0.6 * y + rng.normal(0, 0.1, 400), 0, 1)  # nearly always right
    device = np.clip(0.25 + 0.5 * y + rng.normal(0, 0.15, 400), 0, 1)  # unsure near 0.5
    result = summarize_cascade({"val": (device, server, y), "test": (device, server, y)}, 0.3, 0.7)
    band = result["band"]
    assert result["band_met_on_val"] and band.escalated <= 0.2 and result["val"]["ensemble_accuracy"] - band.accuracy <= 0.01
    assert 0 < band.low < 0.5 < band.high < 1, "a real band, neither nothing nor everything"

    record_cascade(tmp_path / "tiny", tmp_path / "ensemble", result)
    meta = convert(tmp_path / "tiny", tmp_path / "out", quantize="float16", js_checks=False, faces=False, log=lambda _: None)
    c = meta["cascade"]
    assert c["escalate"] == {"above": band.low, "below": band.high}
    assert c["server_model"] == {"name": "ensemble", "version": "v7"} and c["targets_met_on_validation"] is True
    assert c["test"]["escalated"] == round(band.escalated, 4) and c["test"]["n"] == 400


def test_the_video_calibration_reaches_the_extension_metadata(tmp_path):
    """unmask calibrate --video stores it in detector.json; a later conversion must carry it
    (a reconversion once dropped it from extension/model/metadata.json)."""
    from converter.export import convert
    from models.detector import Detector
    from tests.synthetic import small_detector

    small_detector(tmp_path / "tiny", "tiny", steps=0)
    meta = convert(tmp_path / "tiny", tmp_path / "plain", quantize="float16", js_checks=False, faces=False, log=lambda _: None)
    assert "video_calibration" not in meta
    det = Detector.load(tmp_path / "tiny")
    stored = {**det.calibration.to_dict(), "temperature": 2.5, "fitted_on": {"videos": 12, "frames_per_video": [1, 3.0, 5]}}
    det.info["video_calibration"] = stored
    det.save_info()
    meta = convert(tmp_path / "tiny", tmp_path / "out", quantize="float16", js_checks=False, faces=False, log=lambda _: None)
    assert meta["video_calibration"] == stored
    assert json.loads((tmp_path / "out" / "metadata.json").read_text())["video_calibration"] == stored


def test_reconverting_into_a_folder_replaces_the_old_files(converted, tiny_detector, tmp_path):
    from converter.export import convert

    out = tmp_path / "model"
    out.mkdir()
    (out / "group1-shard9of9.bin").write_bytes(b"old shard")
    (out / "README.txt").write_text("not ours")
    (out / "face").mkdir()
    (out / "face" / "model.json").write_text("{}")  # a face model metadata.json will not list
    convert(tiny_detector.path, out, quantize="uint8", js_checks=False, faces=False, log=lambda _: None)
    assert not (out / "group1-shard9of9.bin").exists() and not (out / "face").exists()
    assert (out / "README.txt").read_text() == "not ours"


def test_auto_needs_data(tiny_detector, tmp_path):
    from converter.export import convert

    with pytest.raises(ValueError, match="--data"):
        convert(tiny_detector.path, tmp_path / "out", quantize="auto", log=lambda _: None)


def test_auto_with_data_measures_each_quantization_in_tfjs(tiny_detector, tmp_path):
    """Accuracy figures are real: Keras's equals a recount with Detector.predict_file, and
    the quantization written is the smallest within one point of it (and within 0.01 per image)."""
    node_or_skip()
    from converter.export import MAX_ACCURACY_MOVE, MAX_AUTO_DIFF, convert
    from tests.synthetic import image_tree
    from training.commands.convert import labelled_samples

    data = image_tree(tmp_path / "data", n_per_label=6, size=300, sources=("alpha",))
    lines: list[str] = []
    samples, note = labelled_samples(tiny_detector, data, log=lines.append)
    meta = convert(tiny_detector.path, tmp_path / "out", samples=samples, data_note=note, faces=False, log=lines.append)
    acc = meta["conversion"]["accuracy"]
    files = sorted(data.rglob("*.jpg"))
    truth = [1 if p.parent.name == "fake" else 0 for p in files]
    keras_fake = [tiny_detector.predict_file(p).p_fake_raw >= 0.5 for p in files]
    assert acc["images"] == len(files) == 12
    assert acc["keras"] == pytest.approx(sum(int(f) == t for f, t in zip(keras_fake, truth)) / len(files))
    sizes = meta["conversion"]["model_bytes_by_quantization"]
    keeps = [q for q in ("none", "mixed", "float16", "uint8")
             if abs(acc[q] - acc["keras"]) <= MAX_ACCURACY_MOVE and acc[f"{q}_max_abs_diff"] <= MAX_AUTO_DIFF]
    assert meta["model"]["quantization"] == min(keeps, key=sizes.get)
    assert "TensorFlow.js" in acc["measured_with"] and "wasm" in acc["measured_with"]
    # Per-image agreement on the labelled images is reported too; unquantized it is exact.
    assert acc["none_max_abs_diff"] <= 0.01 and acc["none_verdicts_differ"] == 0
    assert any("TF.js accuracy" in ln for ln in lines)


def test_a_quantization_that_moves_accuracy_is_refused():
    from converter.export import ConversionError, _candidates

    sizes = {"none": 400, "mixed": 220, "float16": 200, "uint8": 100}
    accuracy = {"keras": 0.90, "none": 0.90, "mixed": 0.90, "float16": 0.895, "uint8": 0.85, "images": 200,
                "none_max_abs_diff": 0.0, "mixed_max_abs_diff": 0.003, "float16_max_abs_diff": 0.004, "uint8_max_abs_diff": 0.3}
    assert _candidates("auto", sizes, accuracy) == ["float16", "mixed", "none"]
    # Accuracy kept but single images moved by more than the parity tolerance: auto skips it.
    assert _candidates("auto", sizes, {**accuracy, "float16_max_abs_diff": 0.05}) == ["mixed", "none"]
    assert _candidates("float16", sizes, accuracy) == ["float16"]
    assert _candidates("uint8", sizes, None) == ["uint8"]  # nothing measured, nothing to refuse on
    with pytest.raises(ConversionError, match="uint8 moves accuracy by 5.00 points"):
        _candidates("uint8", sizes, accuracy)
    with pytest.raises(ConversionError, match="does not match Python"):
        _candidates("auto", sizes, {**accuracy, "none": 0.8, "mixed": 0.8, "float16": 0.8, "uint8": 0.8})


# --- refusals and bad input ----------------------------------------------------------------
def _model_with(op_layer):
    import keras

    from models.calibration import Calibration
    from models.detector import Detector
    from models.preprocessing import input_spec

    size = input_spec("tiny").input_size
    inputs = keras.Input((size, size, 3), name="pixels")
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = op_layer(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="p_fake")(x)
    model = keras.Model(inputs, outputs, name="tiny")
    return Detector(model, "tiny", Calibration(), {"name": "odd", "version": "test"})


def test_refuses_an_op_tensorflowjs_lacks_and_names_it(tmp_path, capsys):
    """Erfinv is not in the TF.js op list: refused before conversion, naming op and layer."""
    import keras

    from converter.export import convert
    from converter.ops import UnsupportedOps

    @keras.saving.register_keras_serializable(package="tests_converter")
    class ErfinvLayer(keras.layers.Layer):
        def call(self, x):
            return keras.ops.erfinv(keras.ops.clip(x, -0.9, 0.9))

    det = _model_with(ErfinvLayer(name="inverse_erf"))
    with pytest.raises(UnsupportedOps) as err:
        convert(det, tmp_path / "out", quantize="none", js_checks=False, log=lambda _: None)
    assert "Erfinv" in err.value.ops
    assert "Erfinv" in str(err.value) and "inverse_erf" in str(err.value) and "TensorFlow.js cannot run" in str(err.value)
    assert not (tmp_path / "out").exists()

    # Through the command line: one clear line, exit status 2.
    det.save(tmp_path / "run")
    from training.commands import main

    assert main(["convert", str(tmp_path / "run"), "--out", str(tmp_path / "out2")]) == 2
    msg = capsys.readouterr().err
    assert "unmask convert: error:" in msg and "Erfinv" in msg


def test_refuses_an_op_the_wasm_backend_lacks_and_names_it(tmp_path):
    """Einsum is in the TF.js op list but has no wasm kernel: found by running it in Node."""
    node_or_skip()
    import keras

    from converter.export import convert
    from converter.ops import UnsupportedOps

    @keras.saving.register_keras_serializable(package="tests_converter")
    class EinsumLayer(keras.layers.Layer):
        def call(self, x):
            return keras.ops.einsum("bi,bj->bij", x, x)[:, :, 0]

    det = _model_with(EinsumLayer(name="outer_product"))
    with pytest.raises(UnsupportedOps) as err:
        convert(det, tmp_path / "out", quantize="none", log=lambda _: None)
    assert "Einsum" in err.value.ops
    assert "wasm backend cannot run" in str(err.value) and "outer_product" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_missing_or_corrupt_model_gives_a_clear_error(tmp_path, capsys):
    from training.commands import main

    assert main(["convert", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    assert "no model at" in capsys.readouterr().err

    bad = tmp_path / "broken.keras"
    bad.write_bytes(b"PK\x03\x04 this is not a keras archive")
    assert main(["convert", str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "cannot load the model" in err and str(bad) in err

    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(b"")
    assert main(["convert", str(run), "--out", str(tmp_path / "out")]) == 2
    assert "cannot load the model" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_out_must_be_a_folder(tiny_detector, tmp_path):
    from converter.export import convert

    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        convert(tiny_detector.path, tmp_path / "file", log=lambda _: None)


def test_missing_node_gives_a_clear_error(tiny_detector, tmp_path, monkeypatch):
    from converter import parity
    from converter.export import convert

    monkeypatch.setenv("PATH", str(tmp_path))  # no node on it
    with pytest.raises(FileNotFoundError, match="Node.js is not installed.*--skip-js-checks"):
        convert(tiny_detector.path, tmp_path / "out", log=lambda _: None)
    assert parity.node_problem().startswith("Node.js is not installed")


def test_empty_or_missing_data_folder_gives_a_clear_error(tiny_detector, tmp_path, capsys):
    node_or_skip()
    from training.commands import main

    (tmp_path / "empty").mkdir()
    assert main(["convert", str(tiny_detector.path), "--out", str(tmp_path / "out"), "--data", str(tmp_path / "empty")]) == 2
    assert "it is empty" in capsys.readouterr().err
    assert main(["convert", str(tiny_detector.path), "--out", str(tmp_path / "out"), "--data", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
