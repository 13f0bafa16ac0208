"""MesoNet (Afchar et al., WIFS 2018), a published deepfake detector, as a peer in our tables.

Meso4 and MesoInception4 rebuilt with keras.layers from the authors' Keras 2 HDF5 weight
files (../shared/weights/mesonet, Apache-2.0). Their networks output p(real) (class order
df=0, real=1); ours outputs p(fake) = 1 - p(real), through one last Rescaling(-1, +1).
Input: our contract's 0..255 pixels at 256 px, rescaled to [0, 1] inside the model, as the
authors' ImageDataGenerator(rescale=1/255) did.

The weight files name layers by Keras 2's global counters (conv2d_5.. in one file, conv2d_1..
in another), so arrays are matched by layer kind in creation order (the numeric suffix), and
every array of the file must be used exactly once with the shape our layer expects.
"""
from __future__ import annotations

import re
from pathlib import Path

import keras
from keras import layers

from models.preprocessing import input_spec

# The four published weight files: (network, what its fakes were).
WEIGHT_FILES = {
    "Meso4_DF": ("meso4", "FaceForensics Deepfakes"),
    "Meso4_F2F": ("meso4", "FaceForensics Face2Face"),
    "MesoInception_DF": ("mesoinception4", "FaceForensics Deepfakes"),
    "MesoInception_F2F": ("mesoinception4", "FaceForensics Face2Face"),
}


def _conv(filters, size, name, dilation=1):
    return layers.Conv2D(filters, size, padding="same", activation="relu", dilation_rate=dilation, name=name)


class _Names:
    """Layer names in creation order per kind (conv2d_1, conv2d_2, ...), as Keras 2 made them."""

    def __init__(self):
        self.counts = {}

    def __call__(self, kind):
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return f"{kind}_{self.counts[kind]}"


def _inception(x, widths, name):
    a, b, c, d = widths
    x1 = _conv(a, 1, name("conv2d"))(x)
    x2 = _conv(b, 1, name("conv2d"))(x)
    x2 = _conv(b, 3, name("conv2d"))(x2)
    x3 = _conv(c, 1, name("conv2d"))(x)
    x3 = _conv(c, 3, name("conv2d"), dilation=2)(x3)
    x4 = _conv(d, 1, name("conv2d"))(x)
    x4 = _conv(d, 3, name("conv2d"), dilation=3)(x4)
    return layers.Concatenate(axis=-1)([x1, x2, x3, x4])


def build_mesonet(network: str = "mesoinception4", leaky_head: bool = True) -> keras.Model:
    """Meso4 or MesoInception4, untrained; output p(fake). leaky_head: the LeakyReLU(0.1) after
    the 16-unit dense layer (the paper's head; some published files were saved without it)."""
    if network not in ("meso4", "mesoinception4"):
        raise ValueError(f"unknown MesoNet network {network!r}: use meso4 or mesoinception4")
    spec = input_spec("mesonet")
    name = _Names()
    inputs = keras.Input((spec.input_size, spec.input_size, 3), name="pixels")
    x = layers.Rescaling(spec.scale, spec.offset, name="rescale")(inputs)
    if network == "meso4":
        blocks = [(8, 3), (8, 5)]
        for filters, size in blocks:
            x = _conv(filters, size, name("conv2d"))(x)
            x = layers.BatchNormalization(epsilon=1e-3, name=name("batch_normalization"))(x)
            x = layers.MaxPooling2D(2, padding="same")(x)
    else:
        for widths in [(1, 4, 4, 2), (2, 4, 4, 2)]:
            x = _inception(x, widths, name)
            x = layers.BatchNormalization(epsilon=1e-3, name=name("batch_normalization"))(x)
            x = layers.MaxPooling2D(2, padding="same")(x)
    for pool in (2, 4):
        x = _conv(16, 5, name("conv2d"))(x)
        x = layers.BatchNormalization(epsilon=1e-3, name=name("batch_normalization"))(x)
        x = layers.MaxPooling2D(pool, padding="same")(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.5)(x)
    x = layers.Dense(16, name=name("dense"))(x)
    if leaky_head:
        x = layers.LeakyReLU(negative_slope=0.1)(x)
    x = layers.Dropout(0.5)(x)
    p_real = layers.Dense(1, activation="sigmoid", name=name("dense"))(x)
    p_fake = layers.Rescaling(-1.0, 1.0, name="p_fake")(p_real)  # 1 - p(real)
    return keras.Model(inputs, p_fake, name=network)


def _kind_and_index(layer_name: str):
    m = re.fullmatch(r"(.*)_(\d+)", layer_name)
    if not m:
        raise ValueError(f"unexpected layer name {layer_name!r} in a MesoNet weight file")
    return m.group(1), int(m.group(2))


def load_mesonet(weights_file: Path) -> keras.Model:
    """A MesoNet peer from one of the authors' .h5 files; which network it is comes from the
    file's own layer list, and every array is checked and used once."""
    import h5py

    weights_file = Path(weights_file)
    if not weights_file.exists():
        raise FileNotFoundError(f"MesoNet weights not found: {weights_file} (../shared/weights/mesonet, "
                                "or set UNMASK_WEIGHTS)")
    with h5py.File(weights_file, "r") as f:
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in f.attrs["layer_names"]]
        network = "mesoinception4" if any(n.startswith("concatenate") for n in names) else "meso4"
        model = build_mesonet(network, leaky_head=any(n.startswith("leaky_re_lu") for n in names))
        stored = {}
        for n in names:
            group = f[n]
            arrays = {k.split("/")[-1].split(":")[0]: group[k][()] for k in _datasets(group)}
            if arrays:
                stored.setdefault(_kind_and_index(n)[0], []).append((_kind_and_index(n)[1], arrays))
    by_kind = {kind: [a for _, a in sorted(items, key=lambda t: t[0])] for kind, items in stored.items()}
    ours = {}
    for layer in model.layers:
        if layer.weights and layer.name != "rescale":
            kind, index = _kind_and_index(layer.name)
            ours.setdefault(kind, []).append((index, layer))
    for kind, items in ours.items():
        theirs = by_kind.pop(kind, [])
        if len(theirs) != len(items):
            raise ValueError(f"{weights_file.name}: {len(theirs)} {kind} layers in the file, the network has {len(items)}")
        for (_, layer), arrays in zip(sorted(items, key=lambda t: t[0]), theirs):
            order = ["gamma", "beta", "moving_mean", "moving_variance"] if kind == "batch_normalization" else ["kernel", "bias"]
            values = [arrays.pop(k) for k in order]
            if arrays:
                raise ValueError(f"{weights_file.name}: unused arrays {sorted(arrays)} for {layer.name}")
            for v, w in zip(values, layer.weights):
                if tuple(v.shape) != tuple(w.shape):
                    raise ValueError(f"{weights_file.name}: {layer.name} expects {tuple(w.shape)}, file has {v.shape}")
            layer.set_weights(values)
    if by_kind:
        raise ValueError(f"{weights_file.name}: layers with weights the network lacks: {sorted(by_kind)}")
    return model


def _datasets(group):
    out = []
    group.visititems(lambda n, o: out.append(n) if hasattr(o, "shape") else None)
    return out
