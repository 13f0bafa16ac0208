"""Fold each batch norm that follows a depthwise convolution into that convolution's weights,
before the TensorFlow.js conversion.

The converter folds a batch norm into a regular convolution by itself (_FusedConv2D), but not
into a depthwise one: tiny's 13 depthwise blocks were each converted to DepthwiseConv2dNative,
Mul, AddV2 and Relu6, four kernels in TF.js. Folded here (the depthwise layer gets the batch
norm's scale in its kernel and a bias), the converter fuses each block into one
FusedDepthwiseConv2dNative with its bias and Relu6. In inference the folded model computes the
same function; converter/parity.py still compares the converted graph with the unfolded Keras
model, so the fold is proved with the rest of the conversion.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def foldable_pairs(model) -> dict[int, layers.BatchNormalization]:
    """{id(depthwise layer): its batch norm} for every depthwise convolution whose only use is
    one batch norm over its channels (layers called once, so the fold changes nothing else)."""
    pairs = {}
    for bn in _all_layers(model):
        if not isinstance(bn, layers.BatchNormalization) or len(bn._inbound_nodes) != 1:
            continue
        if bn.axis not in (-1, len(bn.input.shape) - 1):
            continue
        source = bn.input._keras_history[0]
        if (isinstance(source, layers.DepthwiseConv2D) and len(source._inbound_nodes) == 1
                and len(source._outbound_nodes) == 1):
            pairs[id(source)] = bn
    return pairs


def _folded_weights(depthwise, bn) -> list[np.ndarray]:
    """The depthwise kernel and bias that compute depthwise then bn (inference mode)."""
    kernel = keras.ops.convert_to_numpy(depthwise.kernel)
    bias = keras.ops.convert_to_numpy(depthwise.bias) if depthwise.use_bias else 0.0
    channels = kernel.shape[2] * kernel.shape[3]
    gamma = keras.ops.convert_to_numpy(bn.gamma) if bn.scale else np.ones(channels, np.float32)
    beta = keras.ops.convert_to_numpy(bn.beta) if bn.center else np.zeros(channels, np.float32)
    scale = gamma / np.sqrt(keras.ops.convert_to_numpy(bn.moving_variance) + bn.epsilon)
    # Output channel c * multiplier + m comes from kernel[:, :, c, m].
    new_kernel = kernel * scale.reshape(1, 1, kernel.shape[2], kernel.shape[3])
    new_bias = (bias - keras.ops.convert_to_numpy(bn.moving_mean)) * scale + beta
    return [new_kernel.astype(np.float32), new_bias.astype(np.float32)]


def fold_batch_norms(model: keras.Model) -> tuple[keras.Model, int]:
    """(a model computing the same in inference with the foldable batch norms folded, how many
    were folded). The model itself is returned, unchanged, when none is foldable."""
    pairs = foldable_pairs(model)
    if not pairs:
        return model, 0
    folded_bns = {id(bn) for bn in pairs.values()}
    dropped = set()  # ids of the clones of folded batch norms: called as identity

    def clone(layer):
        config = layer.get_config()
        if id(layer) in pairs:
            config["use_bias"] = True
        new = layer.__class__.from_config(config)
        if id(layer) in folded_bns:
            dropped.add(id(new))
        return new

    def call(layer, *args, **kwargs):
        return args[0] if id(layer) in dropped else layer(*args, **kwargs)

    folded = keras.models.clone_model(model, clone_function=clone, call_function=call, recursive=True)
    _copy_weights(model, folded, pairs, folded_bns)
    return folded, len(pairs)


def _copy_weights(source, target, pairs, folded_bns):
    """clone_model builds fresh layers: give each the source's weights (folded where paired).
    The folded batch norms are not in the target at all."""
    for old in source.layers:
        if id(old) in folded_bns or not (old.weights or isinstance(old, keras.Model)):
            continue  # input layers are renamed by the clone; nothing to copy anyway
        new = target.get_layer(old.name)
        if isinstance(old, keras.Model):
            _copy_weights(old, new, pairs, folded_bns)
        elif id(old) in pairs:
            new.set_weights(_folded_weights(old, pairs[id(old)]))
        elif old.weights:
            new.set_weights(old.get_weights())
