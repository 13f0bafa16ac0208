"""ImageNet backbones ported from PyTorch state dicts: EfficientNet-Lite0/Lite2 and MobileNet v2.

Built from keras.layers only, so they run on any Keras backend. Each takes float32 pixels in
0..255 and scales them in its first layer. Layer names are the state-dict names (EfficientNet's
leading "_" dropped: TensorFlow refuses scope names that start with one), so the weights load by
name; see ../shared/weights/README.md for the archives and the check that a port is right.

    efficientnet_lite("lite0")                   # (batch, 1280) pooled features, ImageNet weights
    efficientnet_lite("lite2", include_top=True)  # (batch, 1000) ImageNet class probabilities
    mobilenet_v2(weights=None)                    # random initialisation
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import keras
import numpy as np
from keras import layers

FILES = {
    "lite0": "efficientnet_lite0_imagenet.npz",
    "lite2": "efficientnet_lite2_imagenet.npz",
    "mobilenet_v2": "mobilenet_v2_1.0_imagenet.npz",
}

# Stages as (expansion, kernel, stride of the first block, output channels, blocks).
# Lite scales width and depth but keeps the first and last stage, the stem and the head fixed.
LITE_STAGES = {
    "lite0": [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)],
    "lite2": [(1, 3, 1, 16, 1), (6, 3, 2, 24, 3), (6, 5, 2, 48, 3), (6, 3, 2, 88, 4), (6, 5, 1, 120, 4), (6, 5, 2, 208, 5), (6, 3, 1, 352, 1)],
}
LITE_SIZE = {"lite0": 224, "lite2": 260}
MOBILENET_V2_STAGES = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 3, 2, 32, 3), (6, 3, 2, 64, 4), (6, 3, 1, 96, 3), (6, 3, 2, 160, 3), (6, 3, 1, 320, 1)]
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406]) * 255
IMAGENET_STD = np.array([0.229, 0.224, 0.225]) * 255


def efficientnet_lite(variant: str = "lite0", include_top: bool = False, weights=True, input_size: int | None = None,
                      pooling: str | None = "avg") -> keras.Model:
    """EfficientNet-Lite (no squeeze-excitation, ReLU6), TensorFlow 'same' padding, BN eps 1e-3.

    weights: True loads the shared ImageNet archive, a path loads that file (or that folder's
    archive), None leaves it random. Without the top, returns pooled (batch, 1280) features,
    or the (batch, h, w, 1280) map with pooling=None."""
    if variant not in LITE_STAGES:
        raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}: use lite0 or lite2")
    path = _weights_file(variant, weights)
    size = input_size or LITE_SIZE[variant]
    inputs = keras.Input((size, size, 3), name="pixels")
    x = layers.Rescaling(1 / 127.5, -1.0, name="rescale")(inputs)  # [-1, 1], as trained
    x = _conv_bn(x, 32, 3, 2, "conv_stem", "bn0", eps=1e-3, torch_padding=False)
    i = 0
    for expand, kernel, stride, out, repeats in LITE_STAGES[variant]:
        for r in range(repeats):
            b = f"blocks.{i}."
            names = [(b + "_expand_conv", b + "_bn0")] * (expand != 1)
            names += [(b + "_depthwise_conv", b + "_bn1"), (b + "_project_conv", b + "_bn2")]
            x = _inverted_residual(x, out, expand, kernel, stride if r == 0 else 1, names, eps=1e-3, torch_padding=False)
            i += 1
    x = _conv_bn(x, 1280, 1, 1, "conv_head", "bn1", eps=1e-3, torch_padding=False)
    x = _top(x, include_top, pooling, "dropout", "fc")
    model = keras.Model(inputs, x, name=f"efficientnet_{variant}")
    if path:
        load_state_dict(model, path, key=lambda name: "_" + name, unused=() if include_top else ("_fc.",))
    return model


def mobilenet_v2(include_top: bool = False, weights=True, input_size: int | None = None, pooling: str | None = "avg") -> keras.Model:
    """torchvision's MobileNet v2 (width 1.0): PyTorch padding (1 on every side), BN eps 1e-5,
    ImageNet mean/std normalisation. Arguments as for efficientnet_lite."""
    path = _weights_file("mobilenet_v2", weights)
    size = input_size or 224
    inputs = keras.Input((size, size, 3), name="pixels")
    x = layers.Normalization(mean=IMAGENET_MEAN, variance=IMAGENET_STD**2, name="normalize")(inputs)
    x = _conv_bn(x, 32, 3, 2, "features.0.0", "features.0.1", eps=1e-5, torch_padding=True)
    i = 1
    for expand, kernel, stride, out, repeats in MOBILENET_V2_STAGES:
        for r in range(repeats):
            # torchvision numbers the block's modules in order: [expand conv+bn], depthwise conv+bn, project conv, bn.
            b, j = f"features.{i}.conv.", int(expand != 1)
            names = [(b + "0.0", b + "0.1")] * j + [(f"{b}{j}.0", f"{b}{j}.1"), (f"{b}{j + 1}", f"{b}{j + 2}")]
            x = _inverted_residual(x, out, expand, kernel, stride if r == 0 else 1, names, eps=1e-5, torch_padding=True)
            i += 1
    x = _conv_bn(x, 1280, 1, 1, "features.18.0", "features.18.1", eps=1e-5, torch_padding=True)
    x = _top(x, include_top, pooling, "classifier.0", "classifier.1")
    model = keras.Model(inputs, x, name="mobilenet_v2")
    if path:
        load_state_dict(model, path, unused=() if include_top else ("classifier.",))
    return model


def _conv_bn(x, filters, kernel, stride, conv_name, bn_name, eps, torch_padding, depthwise=False, relu6=True):
    if stride > 1 and torch_padding:
        # PyTorch pads kernel//2 on every side; Keras 'same' would pad more on the bottom/right.
        x = layers.ZeroPadding2D(kernel // 2, name=conv_name + "_pad")(x)
        padding = "valid"
    else:
        padding = "same"
    if depthwise:
        x = layers.DepthwiseConv2D(kernel, stride, padding, use_bias=False, name=conv_name)(x)
    else:
        x = layers.Conv2D(filters, kernel, stride, padding, use_bias=False, name=conv_name)(x)
    x = layers.BatchNormalization(epsilon=eps, name=bn_name)(x)
    return layers.ReLU(6.0, name=bn_name + "_relu6")(x) if relu6 else x


def _inverted_residual(x, out, expand, kernel, stride, names, eps, torch_padding):
    """[1x1 expansion] -> depthwise -> linear 1x1 projection, plus the input when the shapes
    match. `names` holds a (conv, bn) pair per convolution, the expansion's only if expand != 1."""
    shortcut, channels = x, x.shape[-1] * expand
    if expand != 1:
        x = _conv_bn(x, channels, 1, 1, *names[0], eps=eps, torch_padding=torch_padding)
    x = _conv_bn(x, channels, kernel, stride, *names[-2], eps=eps, torch_padding=torch_padding, depthwise=True)
    x = _conv_bn(x, out, 1, 1, *names[-1], eps=eps, torch_padding=torch_padding, relu6=False)
    if stride == 1 and shortcut.shape[-1] == out:
        x = layers.Add(name=names[-1][1] + "_add")([shortcut, x])
    return x


def _top(x, include_top, pooling, dropout_name, dense_name):
    if include_top:
        x = layers.GlobalAveragePooling2D(name="pool")(x)
        x = layers.Dropout(0.2, name=dropout_name)(x)
        return layers.Dense(1000, activation="softmax", name=dense_name)(x)
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name="pool")(x)
    if pooling is not None:
        raise ValueError(f"pooling must be 'avg' or None, not {pooling!r}")
    return x


def _weights_file(name: str, weights) -> Path | None:
    """The archive to load: None/False for none, True for the shared one, else a file or folder."""
    if weights is None or weights is False:
        return None
    if weights is True:
        from models import weights as weight_files

        path = weight_files.FOLDER / FILES[name]
    else:
        path = Path(weights)
        path = path / FILES[name] if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(
            f"{name} ImageNet weights not found: expected {path}. See docs/weights.md for where they come from; "
            f"set UNMASK_WEIGHTS to the folder holding {FILES[name]}, "
            "pass weights=<path to the .npz>, or weights=None for random initialisation."
        )
    return path


def load_state_dict(model: keras.Model, path, key=lambda name: name, unused=()) -> int:
    """Set every weighted layer of `model` from the PyTorch state dict in `path` (.npz), by
    name: layer `n` reads `key(n) + ".weight"` etc. Every array must be used exactly once,
    except those whose names start with a prefix in `unused` (a top that was left off).
    Returns the number of arrays set."""
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    used = []
    for layer in model.layers:
        if not layer.weights:
            continue
        p = key(layer.name)
        if isinstance(layer, layers.DepthwiseConv2D):  # (c, 1, kh, kw) -> (kh, kw, c, 1)
            parts = [(p + ".weight", (2, 3, 0, 1))]
        elif isinstance(layer, layers.Conv2D):  # (out, in, kh, kw) -> (kh, kw, in, out)
            parts = [(p + ".weight", (2, 3, 1, 0))] + [(p + ".bias", None)] * layer.use_bias
        elif isinstance(layer, layers.Dense):  # (out, in) -> (in, out)
            parts = [(p + ".weight", (1, 0)), (p + ".bias", None)]
        elif isinstance(layer, layers.BatchNormalization):  # Keras order: gamma, beta, mean, variance
            parts = [(p + s, None) for s in (".weight", ".bias", ".running_mean", ".running_var")]
        else:
            raise TypeError(f"no state-dict mapping for layer {layer.name!r} ({type(layer).__name__})")
        values = []
        for (k, axes), variable in zip(parts, layer.weights, strict=True):
            if k not in arrays:
                raise KeyError(f"{Path(path).name} has no array {k!r} for layer {layer.name!r}: wrong file or variant?")
            a = arrays[k].astype("float32")  # kernels are stored as float16
            a = a.transpose(axes) if axes else a
            if a.shape != tuple(variable.shape):
                raise ValueError(f"{Path(path).name}: {k!r} has shape {a.shape} after transposing, "
                                 f"layer {layer.name!r} wants {tuple(variable.shape)}")
            values.append(a)
            used.append(k)
        layer.set_weights(values)
    twice = sorted(k for k, n in Counter(used).items() if n > 1)
    extra = sorted(k for k in set(arrays) - set(used) if not k.startswith(tuple(unused)))
    if twice or extra:
        raise ValueError(f"{Path(path).name} does not match {model.name}: arrays used twice {twice[:5]}, "
                         f"arrays unused {extra[:5]}{' ...' if len(extra) > 5 else ''} ({len(extra)} in all)")
    return len(used)
