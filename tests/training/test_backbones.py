"""The ported ImageNet backbones (models/backbones.py): the README's cat/espresso check, parameter
counts, PyTorch's padding, pooled features, and the errors for missing or mismatched weights."""
from __future__ import annotations

import numpy as np
import pytest
import skimage.data

from models import backbones
from models import weights as weight_files
from models.preprocessing import resize_for_model

# name -> (builder, parameters with the classifier, (stem conv, its input), (first stride-2 depthwise conv, its input))
NETWORKS = {
    "lite0": (lambda **k: backbones.efficientnet_lite("lite0", **k), 4_694_024,
              ("conv_stem", "rescale"), ("blocks.1._depthwise_conv", "blocks.1._bn0_relu6")),
    "lite2": (lambda **k: backbones.efficientnet_lite("lite2", **k), 6_150_168,
              ("conv_stem", "rescale"), ("blocks.1._depthwise_conv", "blocks.1._bn0_relu6")),
    "mobilenet_v2": (backbones.mobilenet_v2, 3_538_984,
                     ("features.0.0", "normalize"), ("features.2.conv.1.0", "features.2.conv.0.1_relu6")),
}
CATS = {281, 282, 285}  # tabby, tiger cat, Egyptian cat
ESPRESSO = 967

missing = [f for f in backbones.FILES.values() if not (weight_files.FOLDER / f).is_file()]
needs_weights = pytest.mark.skipif(
    bool(missing), reason=f"ImageNet archives {missing} not in {weight_files.FOLDER} (../shared/weights, or set UNMASK_WEIGHTS)")


@pytest.fixture(scope="module", params=list(NETWORKS))
def network(request):
    """(name, model with the ImageNet top and weights), built once per module."""
    return request.param, NETWORKS[request.param][0](include_top=True)


@pytest.fixture(scope="module")
def photos():
    return {"cat": skimage.data.chelsea(), "espresso": skimage.data.coffee()}


def model_input(image, size):
    return np.asarray(resize_for_model(image, size))[None]


@needs_weights
def test_imagenet_check_cat_and_espresso(network, photos):
    name, model = network
    size = model.input_shape[1]
    cat = np.asarray(model(model_input(photos["cat"], size), training=False))[0]
    espresso = np.asarray(model(model_input(photos["espresso"], size), training=False))[0]
    assert int(cat.argmax()) in CATS, f"{name}: chelsea -> class {cat.argmax()} ({cat.max():.2f})"
    assert int(espresso.argmax()) == ESPRESSO, f"{name}: coffee -> class {espresso.argmax()} ({espresso.max():.2f})"


@needs_weights
def test_parameter_count_matches_the_readme(network):
    name, model = network
    assert model.count_params() == NETWORKS[name][1]


@needs_weights
def test_stride_2_convolutions_pad_like_the_original(network):
    """The cat check passes with either padding, so compare with a NumPy convolution: TensorFlow
    'same' (0 before, 1 after at these sizes) for EfficientNet-Lite, 1 each side for MobileNet v2."""
    import keras

    name, model = network
    pads = (1, 1) if name == "mobilenet_v2" else (0, 1)
    pairs = NETWORKS[name][2:]
    probe = keras.Model(model.input, [model.get_layer(n).output for pair in pairs for n in pair])
    pixels = np.random.default_rng(0).uniform(0, 255, (1, *model.input_shape[1:])).astype("float32")
    outs = [np.asarray(o)[0] for o in probe(pixels, training=False)]
    for (layer, _), got, x in zip(pairs, outs[::2], outs[1::2]):
        conv = model.get_layer(layer)  # kernel (kh, kw, in, out), or (kh, kw, c, 1) when depthwise
        depthwise = isinstance(conv, keras.layers.DepthwiseConv2D)
        np.testing.assert_allclose(got, conv_stride_2(x, conv.get_weights()[0], pads, depthwise),
                                   atol=2e-3 * np.abs(got).max(), err_msg=f"{name} {layer}")


def conv_stride_2(x, kernel, pads, depthwise):
    kh, kw = kernel.shape[:2]
    x = np.pad(x, [pads, pads, (0, 0)])
    oh, ow = (x.shape[0] - kh) // 2 + 1, (x.shape[1] - kw) // 2 + 1
    out = 0
    for i in range(kh):
        for j in range(kw):
            window = x[i:i + 2 * oh:2, j:j + 2 * ow:2]
            out = out + (window * kernel[i, j, :, 0] if depthwise else window @ kernel[i, j])
    return out


@needs_weights
@pytest.mark.parametrize("name", list(NETWORKS))
def test_without_top_gives_the_pooled_1280_features(name, photos):
    model = NETWORKS[name][0]()
    assert model.output_shape == (None, 1280)
    x = np.concatenate([model_input(p, model.input_shape[1]) for p in photos.values()])
    features = np.asarray(model(x, training=False))
    assert features.shape == (2, 1280) and np.all(features >= 0) and features.std() > 0


def test_missing_weights_file_says_where_it_is_expected(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="nope.npz.*UNMASK_WEIGHTS"):
        backbones.efficientnet_lite("lite0", weights=tmp_path / "nope.npz")
    monkeypatch.setattr(weight_files, "FOLDER", tmp_path)  # as UNMASK_WEIGHTS would
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}/mobilenet_v2_1.0_imagenet.npz"):
        backbones.mobilenet_v2()
    assert backbones.mobilenet_v2(weights=None, input_size=96).output_shape == (None, 1280)


@needs_weights
def test_a_mismatched_archive_names_the_array(tmp_path):
    model = backbones.efficientnet_lite("lite0", weights=None)
    with np.load(weight_files.FOLDER / backbones.FILES["lite0"]) as archive:
        arrays = {k: archive[k] for k in archive.files}
    np.savez(tmp_path / "extra.npz", **arrays, **{"_extra.weight": np.zeros(3)})
    np.savez(tmp_path / "short.npz", **{k: v for k, v in arrays.items() if k != "_bn1.running_var"})
    with pytest.raises(ValueError, match="unused.*_extra.weight"):
        backbones.load_state_dict(model, tmp_path / "extra.npz", key=lambda n: "_" + n, unused=("_fc.",))
    with pytest.raises(KeyError, match="_bn1.running_var"):
        backbones.load_state_dict(model, tmp_path / "short.npz", key=lambda n: "_" + n, unused=("_fc.",))
    with pytest.raises(ValueError, match=r"blocks\.3\._depthwise_conv\.weight.*shape"):
        backbones.efficientnet_lite("lite0", weights=weight_files.FOLDER / backbones.FILES["lite2"])
