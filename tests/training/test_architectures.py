"""Every builder in the registry: parameter counts, input sizes, outputs, pretrained weights."""
from __future__ import annotations

import inspect
import json

import keras
import numpy as np
import pytest

from models import architectures
from models import weights as weight_files
from models.preprocessing import input_spec
from models.registry import ARCHITECTURES
from tests.synthetic import face_image


def batch_for(architecture: str, n: int = 2) -> np.ndarray:
    size = input_spec(architecture).input_size
    return np.stack([face_image(lbl, size, i) for i, lbl in zip(range(n), ["real", "fake"] * n)]).astype("float32")


def test_seed_cnn_has_exactly_the_listed_layers_parameters():
    model = architectures.build_seed_cnn()
    assert model.count_params() == 31_509_697
    assert model.input_shape == (None, 256, 256, 3)
    assert [type(layer).__name__ for layer in model.layers[2:]] == [
        "Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten", "Dense", "Dropout", "Dense"]
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)][0]
    assert dense.kernel.shape == (246_016, 128)  # 62 x 62 x 64 flattened


def all_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from all_layers(layer)


def test_tiny_is_small_and_made_of_wasm_friendly_layers():
    model = architectures.build_tiny(weights=None)
    assert model.count_params() < 300_000
    # At most the 224 px its ImageNet weights were trained at: the browser runs it on every badged image.
    assert model.input_shape[1] <= 224 and model.input_shape[1] == model.input_shape[2] == input_spec("tiny").input_size
    allowed = {"InputLayer", "Rescaling", "Conv2D", "DepthwiseConv2D", "BatchNormalization", "ReLU", "ZeroPadding2D",
               "GlobalAveragePooling2D", "Dropout", "Dense", "Functional"}
    assert {type(layer).__name__ for layer in all_layers(model)} <= allowed
    assert sum(isinstance(layer, keras.layers.DepthwiseConv2D) for layer in all_layers(model)) >= 5


@pytest.mark.parametrize("name", ["tiny", "tuned-cnn", "seed-cnn", "npr"])
def test_single_models_output_p_fake(name):
    model = ARCHITECTURES[name].build(**({"weights": None} if name == "tiny" else {}))
    p = np.asarray(model(batch_for(name), training=False))
    assert p.shape == (2, 1) and np.all((p > 0) & (p < 1))
    assert model.input_shape[1] == input_spec(name).input_size


def test_npr_sees_only_what_nearest_upsampling_cannot_explain():
    """NearestResidual is zero on an image upsampled 2x by nearest neighbour, whatever it shows,
    and equals x minus each 2x2 block's first pixel elsewhere; so the NPR member scores every
    nearest-upsampled picture alike."""
    rng = np.random.default_rng(0)
    small = rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    blocky = small.repeat(2, axis=1).repeat(2, axis=2)
    layer = architectures.NearestResidual()
    np.testing.assert_allclose(np.asarray(layer(blocky)), 0.0, atol=1e-4)
    x = rng.uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    expected = x - x[:, ::2, ::2].repeat(2, axis=1).repeat(2, axis=2)
    np.testing.assert_allclose(np.asarray(layer(x)), expected, atol=1e-3)
    model = architectures.build_npr()
    size = input_spec("npr").input_size
    two = rng.uniform(0, 255, (2, size // 2, size // 2, 3)).astype("float32").repeat(2, axis=1).repeat(2, axis=2)
    p = np.asarray(model(two, training=False)).ravel()
    assert abs(p[0] - p[1]) < 1e-5  # both residuals are zero
    assert model.count_params() < 600_000


def test_tuned_cnn_has_batch_norm_and_its_tunable_knobs():
    model = architectures.build_tuned_cnn(filters=(8, 16), dense=16, dropout=0.2)
    assert any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
    assert model.get_layer("block1_conv0").filters == 16
    assert architectures.build_tuned_cnn().count_params() > model.count_params()


def _tfjs_array(folder, name):
    """One weight straight from a TF.js manifest and its binary shards (read independently)."""
    manifest = json.loads((folder / "model.json").read_text())["weightsManifest"]
    for group in manifest:
        offset = 0
        for w in group["weights"]:
            n = int(np.prod(w["shape"]))
            if w["name"] == name:
                data = b"".join((folder / p).read_bytes() for p in group["paths"])
                return np.frombuffer(data[offset : offset + 4 * n], "<f4").reshape(w["shape"])
            offset += 4 * n
    raise KeyError(name)


def backbone(model):
    (nested,) = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return nested


@pytest.mark.parametrize("name,alpha", [("pretrained", 0.25), ("pretrained", 1.0), ("tiny", 0.25)])
def test_pretrained_backbones_load_the_shared_mobilenet_weights(name, alpha):
    folder = weight_files.FOLDER / weight_files.MOBILENET[alpha]
    if not folder.exists():
        pytest.skip(f"{folder} is not on this machine")
    if name == "tiny":
        model = architectures.build_tiny(weights="shared")
    else:
        model = architectures.build_pretrained(alpha=alpha, weights="shared")
    base = backbone(model)
    # Keras 3 names a depthwise kernel "kernel"; TF.js (Keras 2) "depthwise_kernel".
    for layer, var, name_in_file in [("conv1", "kernel", "conv1/kernel"), ("conv_dw_5", "kernel", "conv_dw_5/depthwise_kernel"),
                                     ("conv_pw_12_bn", "moving_variance", "conv_pw_12_bn/moving_variance")]:
        loaded = next(np.asarray(v) for v in base.get_layer(layer).weights if v.name == var)
        np.testing.assert_array_equal(loaded, _tfjs_array(folder, name_in_file))
    p = np.asarray(model(batch_for(name), training=False))
    assert p.shape == (2, 1) and model.input_shape[1] == input_spec(name).input_size


def test_pretrained_without_weights_is_random():
    model = architectures.build_pretrained(alpha=0.25, weights=None)
    folder = weight_files.FOLDER / weight_files.MOBILENET[0.25]
    if folder.exists():
        assert not np.array_equal(np.asarray(backbone(model).get_layer("conv1").kernel), _tfjs_array(folder, "conv1/kernel"))


def test_missing_shared_weights_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="--weights imagenet"):
        architectures.build_pretrained(alpha=0.25, weights="shared", weights_dir=tmp_path)


def test_ensemble_outputs_p_fake_and_members():
    members = [architectures.build_tuned_cnn(filters=(8, 16), dense=16), architectures.build_pretrained(alpha=0.25, weights=None)]
    model = architectures.build_ensemble(members)
    out = model(batch_for("ensemble"), training=False)
    assert set(out) == {"p_fake", "members"}
    p, m = np.asarray(out["p_fake"]), np.asarray(out["members"])
    assert p.shape == (2, 1) and m.shape == (2, 2)
    assert np.all((p > 0) & (p < 1)) and np.all((m > 0) & (m < 1))
    # With equal stacking weights and no bias, p is the sigmoid of the mean member logit.
    z = np.log(m) - np.log1p(-m)
    np.testing.assert_allclose(p.ravel(), 1 / (1 + np.exp(-z.mean(axis=1))), rtol=1e-4)


def test_models_use_keras_layers_and_ops_only():
    source = inspect.getsource(architectures)
    assert "import tensorflow" not in source and "tf." not in source
