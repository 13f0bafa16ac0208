"""The detectors, written with keras.layers and keras.ops only, so they run on any backend.

Every model takes float32 pixels in 0..255 at its contract size (models/preprocessing.json)
and rescales inside its first layer. Every single model outputs p(fake), shape (batch, 1).
The ensemble outputs {"p_fake": (batch, 1), "members": (batch, n_members)}.
"""
from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from models import weights as weight_files
from models.preprocessing import input_spec



def _input_and_rescale(architecture: str):
    spec = input_spec(architecture)
    inputs = keras.Input((spec.input_size, spec.input_size, 3), name="pixels")
    x = layers.Rescaling(spec.scale, spec.offset, name="rescale")(inputs)
    return inputs, x


def build_seed_cnn(dropout: float = 0.5) -> keras.Model:
    """Our predecessors' DeepfakeDetector, layer for layer: 31,509,697 parameters."""
    inputs, x = _input_and_rescale("seed-cnn")
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(1, activation="sigmoid", name="p_fake")(x)
    return keras.Model(inputs, outputs, name="seed_cnn")


def build_tuned_cnn(filters=(24, 48, 96, 192), dense: int = 128, dropout: float = 0.4, l2: float = 1e-4) -> keras.Model:
    """A deeper CNN with batch norm; `filters`, `dense` and `dropout` are tuned on validation.
    A strided stem halves the input first, which keeps a CPU epoch in minutes."""
    inputs, x = _input_and_rescale("tuned-cnn")
    reg = keras.regularizers.L2(l2) if l2 else None
    x = layers.Conv2D(filters[0], 3, strides=2, padding="same", use_bias=False, kernel_regularizer=reg, name="stem")(x)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for i, f in enumerate(filters):
        for j in range(2):
            x = layers.Conv2D(f, 3, padding="same", use_bias=False, kernel_regularizer=reg, name=f"block{i}_conv{j}")(x)
            x = layers.BatchNormalization(name=f"block{i}_bn{j}")(x)
            x = layers.ReLU(name=f"block{i}_relu{j}")(x)
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(dense, activation="relu", kernel_regularizer=reg)(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(1, activation="sigmoid", name="p_fake")(x)
    return keras.Model(inputs, outputs, name="tuned_cnn")


# The backbones `tiny` can be built on (bench/tiny_backbones.py measures each one's size and
# browser speed). The ported ones come from models/backbones.py (PyTorch ImageNet weights in
# ../shared/weights); each is cut after its own input scaling, so that tiny's first layer is
# the contract's rescale, as in every other detector.
TINY_BACKBONES = ("mobilenet_v1_0.25", "efficientnet_lite0", "mobilenet_v2")
# Where fine-tuning could start in each (a layer of the nested backbone, for training/train.py's
# FINE_TUNE_FROM): the whole network for v1 0.25 (as trained today); for the larger two, the first
# block at 1/16 resolution, as `pretrained` does with its MobileNet (conv_dw_6).
TINY_FINE_TUNE_FROM = {"mobilenet_v1_0.25": "conv1", "efficientnet_lite0": "blocks.5._expand_conv",
                       "mobilenet_v2": "features.7.conv.0.0"}


def build_tiny(weights: str | None = "shared", dropout: float = 0.3, weights_dir: Path | None = None,
               backbone: str = "mobilenet_v1_0.25", input_size: int | None = None) -> keras.Model:
    """The on-device model: an ImageNet-pretrained backbone (depthwise-separable blocks, which
    TF.js runs fast on wasm) with a new head: global pooling, dropout, p_fake.

    backbone: one of TINY_BACKBONES. mobilenet_v1_0.25 (the default, about 219k parameters) is
    MobileNet v1 at width 0.25; efficientnet_lite0 and mobilenet_v2 are the ports of
    models/backbones.py. weights: "shared" (../shared/weights, or weights_dir), "imagenet"
    (Keras download, MobileNet v1 only) or None (random). input_size: the contract's by default;
    another size is for measuring (bench/tiny_backbones.py), since consumers resize to the contract's."""
    spec = input_spec("tiny")
    size = input_size or spec.input_size
    inputs = keras.Input((size, size, 3), name="pixels")
    x = layers.Rescaling(spec.scale, spec.offset, name="rescale")(inputs)
    if backbone == "mobilenet_v1_0.25":
        base = build_backbone("mobilenet", 0.25, weights, weights_dir, input_size=size)
    elif backbone in ("efficientnet_lite0", "mobilenet_v2"):
        x = _to_backbone_scaling(x, backbone, spec)
        base = _ported_backbone(backbone, weights, weights_dir, size)
    else:
        raise ValueError(f"unknown tiny backbone {backbone!r}: use one of {', '.join(TINY_BACKBONES)}")
    x = base(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(1, activation="sigmoid", name="p_fake")(x)
    return keras.Model(inputs, outputs, name="tiny")


# What each ported backbone's first layer makes of 0..255 pixels: y = x * scale + offset (per channel).
def _ported_input_scaling(backbone: str):
    from models.backbones import IMAGENET_MEAN, IMAGENET_STD

    if backbone == "efficientnet_lite0":
        return np.full(3, 1 / 127.5), np.full(3, -1.0)  # [-1, 1]
    return 1 / IMAGENET_STD, -IMAGENET_MEAN / IMAGENET_STD  # mobilenet_v2: ImageNet mean/std per channel


def _to_backbone_scaling(x, backbone: str, spec):
    """From the contract's scaling (x * spec.scale + spec.offset) to the backbone's own: nothing
    when they agree (EfficientNet-Lite0 with [-1, 1]), else one per-channel Rescaling."""
    scale, offset = _ported_input_scaling(backbone)
    # pixels = (x - spec.offset) / spec.scale, so y = x * scale / spec.scale + offset - spec.offset * scale / spec.scale
    a, b = scale / spec.scale, offset - spec.offset * scale / spec.scale
    if np.allclose(a, 1.0, rtol=0, atol=1e-9) and np.allclose(b, 0.0, rtol=0, atol=1e-9):
        return x
    return layers.Rescaling([float(v) for v in a], [float(v) for v in b], name="backbone_scaling")(x)


def _ported_backbone(backbone: str, weights, weights_dir: Path | None, size: int) -> keras.Model:
    """The ported network's feature map (batch, h, w, 1280), taking inputs already in its own
    scaling: the network of models/backbones.py cut after its first (scaling) layer."""
    from models import backbones

    if weights == "imagenet":
        raise ValueError(f"{backbone}: Keras has no download of these weights; use weights='shared' "
                         "(../shared/weights) or None")
    if weights not in ("shared", None):
        raise ValueError(f"weights must be 'shared', 'imagenet' or None, not {weights!r}")
    source = None if weights is None else (Path(weights_dir) if weights_dir else True)
    if backbone == "efficientnet_lite0":
        full, first = backbones.efficientnet_lite("lite0", weights=source, input_size=size, pooling=None), "rescale"
    else:
        full, first = backbones.mobilenet_v2(weights=source, input_size=size, pooling=None), "normalize"
    return keras.Model(full.get_layer(first).output, full.output, name=backbone)


def load_tfjs_weights(model: keras.Model, folder: Path) -> int:
    """Assign weights from a TF.js weights manifest to the layers of `model` with the same
    names; returns how many arrays were set. Layers absent from the manifest are left alone."""
    manifest = json.loads((folder / "model.json").read_text())["weightsManifest"]
    arrays = {}
    for group in manifest:
        shards = [folder / p for p in group["paths"]]
        if not all(s.exists() for s in shards):
            continue
        buf = b"".join(s.read_bytes() for s in shards)
        offset = 0
        for w in group["weights"]:
            n = int(np.prod(w["shape"])) if w["shape"] else 1
            arrays[w["name"]] = np.frombuffer(buf, np.float32, n, offset).reshape(w["shape"])
            offset += 4 * n
    assigned = 0
    for layer in model.layers:
        # TF.js (Keras 2) calls a depthwise kernel "depthwise_kernel"; Keras 3 calls it "kernel".
        prefix = "depthwise_" if isinstance(layer, layers.DepthwiseConv2D) else ""
        names = [f"{layer.name}/{prefix}{v.name}" for v in layer.weights]
        if names and all(n in arrays for n in names):
            layer.set_weights([arrays[n] for n in names])
            assigned += len(names)
    return assigned


def build_backbone(kind: str = "mobilenet", alpha: float = 1.0, weights: str | None = "shared", weights_dir: Path | None = None,
                   input_size: int | None = None):
    """An ImageNet feature extractor taking inputs already scaled to [-1, 1].

    weights: "shared" loads MobileNet v1 from ../shared/weights (TF.js files, by layer name);
    "imagenet" lets Keras download (needs internet); None leaves it random."""
    size = input_size or input_spec("pretrained").input_size
    shape = (size, size, 3)
    if kind == "xception":
        return keras.applications.Xception(include_top=False, weights="imagenet" if weights else None, input_shape=shape, pooling=None)
    if kind != "mobilenet":
        raise ValueError(f"unknown backbone {kind!r}: use mobilenet or xception")
    full = keras.applications.MobileNet(
        input_shape=shape, alpha=alpha, include_top=False, weights="imagenet" if weights == "imagenet" else None
    )
    if weights == "shared":
        folder = Path(weights_dir or weight_files.FOLDER) / weight_files.MOBILENET[alpha]
        if not (folder / "model.json").exists():
            raise FileNotFoundError(
                f"MobileNet weights not found in {folder}; pass --weights imagenet to download them, or none"
            )
        if load_tfjs_weights(full, folder) == 0:
            raise ValueError(f"no weights in {folder} matched the MobileNet layers")
    # The truncated 1.0 weights stop at block 12, so every variant ends there.
    last = "conv_pw_12_relu" if alpha == 1.0 else full.layers[-1].name
    return keras.Model(full.input, full.get_layer(last).output, name=f"mobilenet_{alpha}")


def build_pretrained(backbone: str = "mobilenet", alpha: float = 1.0, weights: str | None = "shared",
                     dropout: float = 0.3, weights_dir: Path | None = None) -> keras.Model:
    """A pretrained backbone with a new head. Train the head first (backbone frozen), then
    fine-tune: see training/train.py. backbone: mobilenet (v1, `alpha` wide), xception, or
    mobilenet_v2 (the port of models/backbones.py at the contract's 256 px: the server's
    self-blended specialist)."""
    inputs, x = _input_and_rescale("pretrained")
    if backbone == "mobilenet_v2":
        spec = input_spec("pretrained")
        x = _to_backbone_scaling(x, backbone, spec)
        base = _ported_backbone(backbone, weights, weights_dir, spec.input_size)
    else:
        base = build_backbone(backbone, alpha, weights, weights_dir)
    x = base(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(1, activation="sigmoid", name="p_fake")(x)
    return keras.Model(inputs, outputs, name="pretrained")


@keras.saving.register_keras_serializable(package="unmask")
class NearestResidual(layers.Layer):
    """NPR (Tan et al., CVPR 2024): the image minus its nearest-neighbour 2x down-and-up-sampled
    copy. What is left is how each pixel differs from its 2x2 block's first pixel, where the
    upsampling layers of GAN and diffusion decoders leave their mark."""

    def call(self, x):
        down = x[:, ::2, ::2, :]
        up = ops.repeat(ops.repeat(down, 2, axis=1), 2, axis=2)
        return x - up

    def compute_output_shape(self, shape):
        return shape


def build_npr(filters=(32, 64, 128, 256), dropout: float = 0.3) -> keras.Model:
    """A small CNN from scratch on upsampling residuals (NearestResidual). The residual is
    amplified to values of order one, then each 2x2 block becomes 12 channels (space to
    depth), so the first conv sees the block's four phases apart without running at full
    resolution; separable convs after it keep a CPU epoch in minutes (about 80M multiply-adds
    per 256 px image)."""
    inputs, x = _input_and_rescale("npr")
    x = NearestResidual(name="npr")(x)
    x = layers.Rescaling(4.0, name="amplify")(x)
    size = input_spec("npr").input_size
    x = layers.Reshape((size // 2, 2, size // 2, 2, 3), name="blocks")(x)
    x = layers.Permute((1, 3, 2, 4, 5), name="phases")(x)
    x = layers.Reshape((size // 2, size // 2, 12), name="space_to_depth")(x)
    x = layers.Conv2D(filters[0], 3, padding="same", use_bias=False, name="stem")(x)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for i, f in enumerate(filters[1:]):
        x = layers.SeparableConv2D(f, 3, strides=2, padding="same", use_bias=False, name=f"block{i}_sep")(x)
        x = layers.BatchNormalization(name=f"block{i}_bn")(x)
        x = layers.ReLU(name=f"block{i}_relu")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(1, activation="sigmoid", name="p_fake")(x)
    return keras.Model(inputs, outputs, name="npr")


@keras.saving.register_keras_serializable(package="unmask")
class LogitStack(layers.Layer):
    """p = sigmoid(sum_i w_i * logit(p_i) + b): a weighted vote in logit space."""

    def __init__(self, n_members: int, **kwargs):
        super().__init__(**kwargs)
        self.n_members = n_members

    def build(self, input_shape):
        self.w = self.add_weight(shape=(self.n_members,), initializer=keras.initializers.Constant(1.0 / self.n_members), name="w")
        self.b = self.add_weight(shape=(), initializer="zeros", name="b")

    def call(self, members):
        p = ops.clip(members, 1e-6, 1 - 1e-6)
        z = ops.log(p) - ops.log(1 - p)
        return ops.sigmoid(ops.sum(z * self.w, axis=-1, keepdims=True) + self.b)

    def get_config(self):
        return {**super().get_config(), "n_members": self.n_members}


def build_ensemble(members: list[keras.Model] | None = None) -> keras.Model:
    """The tuned CNN and the pretrained network in one model. Each member sees the input
    resized to its own contract size; their votes are stacked in logit space."""
    if members is None:
        members = [build_tuned_cnn(), build_pretrained(weights=None)]
    spec = input_spec("ensemble")
    inputs = keras.Input((spec.input_size, spec.input_size, 3), name="pixels")
    scores = []
    for m in members:
        size = m.input_shape[1]
        x = inputs if size == spec.input_size else layers.Resizing(size, size, interpolation="bilinear", name=f"resize_{m.name}")(inputs)
        scores.append(m(x))
    stacked = layers.Concatenate(name="members")(scores) if len(scores) > 1 else scores[0]
    p = LogitStack(len(members), name="p_fake")(stacked)
    return keras.Model(inputs, {"p_fake": p, "members": stacked}, name="ensemble")
