"""Keras to a TensorFlow.js graph model: the SavedModel export and the tensorflowjs converter,
shared by the detector's conversion (converter/export.py) and the face model's (converter/faces.py)."""
from __future__ import annotations

from pathlib import Path

SHARD_BYTES = 4 * 1024 * 1024


def export_saved_model(model, path: Path):
    """Model.export, but tracing the call with training=False: plain export leaves nested
    models (the ensemble's members) in training mode, and their dropout's seed updates then
    break freezing."""
    import keras
    import tensorflow as tf

    shape = tuple(model.inputs[0].shape)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", lambda pixels: model(pixels, training=False),
                         input_signature=[tf.TensorSpec((None, *shape[1:]), tf.float32, name="pixels")])
    archive.write_out(str(path), verbose=False)


def layer_names(model) -> list[str]:
    """Every layer name, nested models included, to name the layer behind a graph node."""
    names = []
    for layer in model.layers:
        names.append(layer.name)
        if hasattr(layer, "layers"):
            names += layer_names(layer)
    return names


def tfjs_convert(saved: Path, dest: Path, dtype_map: dict | None):
    from converter import ops

    ops.import_tensorflowjs()
    from tensorflowjs.converters import tf_saved_model_conversion_v2 as tfjs_conv

    try:
        tfjs_conv.convert_tf_saved_model(str(saved), str(dest), quantization_dtype_map=dtype_map,
                                         weight_shard_size_bytes=SHARD_BYTES)
    except ValueError as e:
        unsupported = ops.from_converter_error(e)
        raise (unsupported or ValueError(f"tensorflowjs_converter failed ({dest.name}): {e}")) from e
