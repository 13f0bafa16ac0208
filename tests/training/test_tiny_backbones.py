"""build_tiny on each backbone it offers (models.architectures.TINY_BACKBONES): p_fake out, the
contract's rescale first, the ported backbones' own input scaling reproduced exactly, their
ImageNet weights loaded (the cat/espresso check through tiny's own features), the fine-tuning
start layers, and a .keras round trip."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from models import architectures, backbones
from models import weights as weight_files
from models.preprocessing import input_spec
from tests.training.test_backbones import CATS, ESPRESSO, model_input, needs_weights, photos  # noqa: F401 (fixture)

PORTED = {"efficientnet_lite0": ("lite0", lambda **k: backbones.efficientnet_lite("lite0", **k), "_fc."),
          "mobilenet_v2": ("mobilenet_v2", backbones.mobilenet_v2, "classifier.1.")}
WASM_FRIENDLY = {"InputLayer", "Rescaling", "Conv2D", "DepthwiseConv2D", "BatchNormalization", "ReLU", "ZeroPadding2D",
                 "Add", "GlobalAveragePooling2D", "Dropout", "Dense", "Functional"}


def nested(model):
    (base,) = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return base


def layer_types(model):
    for layer in model.layers:
        yield type(layer).__name__
        if isinstance(layer, keras.Model):
            yield from layer_types(layer)


@pytest.mark.parametrize("backbone", architectures.TINY_BACKBONES)
def test_every_backbone_gives_p_fake_after_the_contract_rescale(backbone):
    spec = input_spec("tiny")
    model = architectures.build_tiny(weights=None, backbone=backbone, input_size=96)
    assert model.input_shape == (None, 96, 96, 3)
    rescale = model.layers[1]
    assert rescale.name == "rescale" and (rescale.scale, rescale.offset) == (spec.scale, spec.offset)
    assert set(layer_types(model)) <= WASM_FRIENDLY
    assert model.get_layer("p_fake").output.shape == (None, 1)
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 96, 96, 3)).astype("float32")
    p = np.asarray(model(pixels, training=False))
    assert p.shape == (2, 1) and np.all((p > 0) & (p < 1))


def test_the_default_is_todays_tiny_at_the_contract_size():
    model = architectures.build_tiny(weights=None)
    assert model.input_shape[1] == input_spec("tiny").input_size
    assert nested(model).name == "mobilenet_0.25" and model.count_params() == 218_801


@needs_weights
@pytest.mark.parametrize("backbone", list(PORTED))
def test_ported_backbones_see_their_own_scaling_and_weights(backbone, photos):  # noqa: F811 (fixture)
    """tiny's pooled features equal the ported network's own (which scales 0..255 itself), and
    through the network's ImageNet classifier they still call chelsea a cat and coffee espresso."""
    name, build, top = PORTED[backbone]
    tiny = architectures.build_tiny(backbone=backbone, input_size=224)
    features = keras.Model(tiny.input, tiny.get_layer("pool").output)
    x = np.concatenate([model_input(photos["cat"], 224), model_input(photos["espresso"], 224)])
    got = np.asarray(features(x, training=False))
    want = np.asarray(build(input_size=224)(x, training=False))
    np.testing.assert_allclose(got, want, atol=1e-4 * np.abs(want).max())
    with np.load(weight_files.FOLDER / backbones.FILES[name]) as archive:
        w, b = archive[top + "weight"].astype("float32"), archive[top + "bias"].astype("float32")
    cat, espresso = (got @ w.T + b).argmax(axis=1)
    assert int(cat) in CATS and int(espresso) == ESPRESSO, (backbone, cat, espresso)


@needs_weights
@pytest.mark.parametrize("backbone", architectures.TINY_BACKBONES)
def test_fine_tuning_start_layer_is_in_the_backbone(backbone):
    from training.train import backbone_of, set_backbone_trainable

    model = architectures.build_tiny(backbone=backbone, input_size=96)
    base = backbone_of(model)
    assert base is nested(model)
    start = architectures.TINY_FINE_TUNE_FROM[backbone]
    names = [layer.name for layer in base.layers]
    assert start in names
    set_backbone_trainable(model, True, start)
    assert [layer.trainable for layer in base.layers] == [i >= names.index(start) for i in range(len(names))]


def test_ported_backbone_round_trips_through_a_keras_file(tmp_path):
    model = architectures.build_tiny(weights=None, backbone="mobilenet_v2", input_size=96)
    model.save(tmp_path / "model.keras")
    again = keras.saving.load_model(tmp_path / "model.keras")
    pixels = np.random.default_rng(1).uniform(0, 255, (1, 96, 96, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(again(pixels, training=False)), np.asarray(model(pixels, training=False)), atol=1e-6)


def test_unknown_backbone_and_unavailable_weights_are_refused():
    with pytest.raises(ValueError, match="unknown tiny backbone 'resnet50'.*efficientnet_lite0"):
        architectures.build_tiny(weights=None, backbone="resnet50")
    with pytest.raises(ValueError, match="no download"):
        architectures.build_tiny(weights="imagenet", backbone="efficientnet_lite0")


def test_pretrained_on_mobilenet_v2_at_the_contract_size_fine_tunes_from_its_own_block():
    """The server's self-blended specialist: `unmask train --model pretrained --backbone mobilenet_v2`."""
    from types import SimpleNamespace

    from training.train import backbone_of, fine_tune_from

    spec = input_spec("pretrained")
    model = architectures.build_pretrained(backbone="mobilenet_v2", weights=None)
    assert model.input_shape == (None, spec.input_size, spec.input_size, 3)
    assert backbone_of(model).name == "mobilenet_v2" and model.get_layer("p_fake").output.shape == (None, 1)
    start = fine_tune_from(SimpleNamespace(model="pretrained", backbone="mobilenet_v2"))
    assert start in [layer.name for layer in backbone_of(model).layers]
    assert fine_tune_from(SimpleNamespace(model="pretrained", backbone="mobilenet")) == "conv_dw_6"
