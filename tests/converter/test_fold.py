"""converter/fold.py: batch norms folded into the depthwise convolutions before them give the
same function, and only where nothing else reads the convolution's output."""
from __future__ import annotations

import numpy as np


def _with_statistics(model, rng):
    """Batch norms with statistics far from identity, so that a wrong fold shows."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.Model):
            _with_statistics(layer, rng)
        elif isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0] if layer.scale else layer.moving_mean.shape[0]
            weights = []
            if layer.scale:
                weights.append(rng.uniform(0.3, 3.0, n))
            if layer.center:
                weights.append(rng.normal(0, 1, n))
            weights += [rng.normal(0, 2, n), rng.uniform(0.05, 4.0, n)]
            layer.set_weights([w.astype("float32") for w in weights])
        elif layer.weights:
            layer.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in layer.get_weights()])


def _model():
    """A nested model with: depthwise + bn (foldable), depthwise with bias and a multiplier of 2
    + bn without scale (foldable), a depthwise read by a bn and by an add (not foldable),
    a regular convolution + bn (left to the TF.js converter)."""
    import keras
    from keras import layers

    inner_in = keras.Input((16, 16, 4))
    x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw_plain")(inner_in)
    x = layers.BatchNormalization(name="bn_plain")(x)
    x = layers.ReLU(6.0)(x)
    x = layers.DepthwiseConv2D(3, padding="same", use_bias=True, depth_multiplier=2, name="dw_bias_mult")(x)
    x = layers.BatchNormalization(scale=False, name="bn_no_scale")(x)
    inner = keras.Model(inner_in, x, name="inner")

    inputs = keras.Input((16, 16, 4), name="pixels")
    y = inner(inputs)
    shared = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw_shared")(y)
    z = layers.BatchNormalization(name="bn_after_shared")(shared)
    z = layers.Add()([z, shared])
    z = layers.Conv2D(4, 1, use_bias=False, name="conv")(z)
    z = layers.BatchNormalization(name="bn_after_conv")(z)
    z = layers.GlobalAveragePooling2D()(z)
    outputs = layers.Dense(1, activation="sigmoid", name="p_fake")(z)
    return keras.Model(inputs, outputs)


def _leaf_names(model):
    import keras

    names = []
    for layer in model.layers:
        names += _leaf_names(layer) if isinstance(layer, keras.Model) else [layer.name]
    return names


def test_folding_keeps_the_function_and_removes_only_the_foldable_batch_norms():
    from converter.fold import fold_batch_norms

    rng = np.random.default_rng(3)
    model = _model()
    _with_statistics(model, rng)
    x = rng.uniform(-2, 2, (6, 16, 16, 4)).astype("float32")
    before = model.predict(x, verbose=0)

    folded, n = fold_batch_norms(model)

    assert n == 2
    names = _leaf_names(folded)
    assert "bn_plain" not in names and "bn_no_scale" not in names
    assert {"bn_after_shared", "bn_after_conv", "dw_shared"} <= set(names)
    assert folded.get_layer("inner").get_layer("dw_plain").use_bias
    np.testing.assert_allclose(folded.predict(x, verbose=0), before, rtol=0, atol=2e-5)
    # The original is untouched.
    assert model.get_layer("inner").get_layer("bn_plain") is not None
    np.testing.assert_array_equal(model.predict(x, verbose=0), before)


def test_the_tiny_architecture_folds_all_its_depthwise_batch_norms(tmp_path):
    """On the converter tests' seeded tiny (tests.synthetic.seeded_tiny): a random network with
    default statistics is chaotic, and float rounding alone would move its output."""
    import keras

    from converter.fold import fold_batch_norms
    from tests.synthetic import face_image, seeded_tiny

    model = seeded_tiny(tmp_path).model
    size = model.input_shape[1]
    x = np.stack([face_image(label, size, 7 + i) for i in range(3) for label in ("real", "fake")]).astype("float32")

    folded, n = fold_batch_norms(model)

    assert n == 13  # MobileNet v1's depthwise blocks
    a, b = (keras.ops.convert_to_numpy(m.get_layer("mobilenet_0.25")(m.get_layer("rescale")(x))) for m in (model, folded))
    assert a.std() > 0.1
    assert np.abs(a - b).max() <= 1e-4 * np.abs(a).max()
    p = model.predict(x, verbose=0)
    assert p.std() > 0.05  # scores spread, so a wrong fold would show in them too
    np.testing.assert_allclose(folded.predict(x, verbose=0), p, rtol=0, atol=1e-5)


def test_a_model_with_nothing_to_fold_is_returned_as_it_is():
    import keras

    from converter.fold import fold_batch_norms

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(2, 3)(inputs)
    x = keras.layers.BatchNormalization()(x)
    model = keras.Model(inputs, x)
    assert fold_batch_norms(model) == (model, 0)


def test_a_model_that_cannot_be_cloned_is_converted_unfolded_and_the_log_says_so():
    """Folding only saves time: where Keras cannot rebuild a layer from its config, the
    conversion goes on with the model as it is."""
    import keras

    from converter.export import _fold_batch_norms

    class NeedsAnArgument(keras.layers.Layer):  # its config lacks `factor`: from_config fails
        def __init__(self, factor, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, x):
            return x * self.factor

        def get_config(self):
            return {"name": self.name}

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.DepthwiseConv2D(3, use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    model = keras.Model(inputs, NeedsAnArgument(2.0)(x))
    lines = []
    assert _fold_batch_norms(model, lines.append) == (model, 0)
    assert len(lines) == 1 and "batch norms not folded" in lines[0] and "converting the model as it is" in lines[0]
