"""What a detector looked at: Grad-CAM, LIME, or the feature maps of one layer.

Used by `unmask explain` (training/commands/explain.py) and the server through models/inference.py,
which runs them on each face crop and puts each map back where its crop lies. The heat
shows the regions that pushed the score toward the target label. On a picture given
directly, the model sees only its centre square (the preprocessing contract), so outside
it the heat is zero and `overlay` can outline the square.
For an ensemble, each member's map is taken against the ensemble's own score and summed.
Grad-CAM uses tf.GradientTape, so explain needs the TensorFlow backend.
"""
from __future__ import annotations

import io
import sys
import threading
import weakref

import numpy as np

TARGETS = ("fake", "real")
MIN_CAM_SIDE = 7  # default Grad-CAM layer: the last one still at least this many cells wide


# --- reaching inside a model (nested members included) ----------------------------------
def _submodels(model):
    import keras

    return [layer for layer in model.layers if isinstance(layer, keras.Model)]


def _is_map(layer) -> bool:
    """A layer whose output is a spatial feature map (batch, h, w, c)."""
    import keras

    # Inputs, rescaling and resizing carry pixels, not features.
    if isinstance(layer, (keras.layers.InputLayer, keras.layers.Rescaling, keras.layers.Resizing)):
        return False
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError):
        return False  # shared layers have no single output
    return len(shape) == 4 and shape[1] is not None and shape[1] > 1


def map_layers(model, prefix: str = "") -> list[str]:
    """Every feature-map layer, as NAME or MEMBER/NAME paths, in the order they compute
    (a member's inner layers come just before the member's own output)."""
    names = []
    for layer in model.layers:
        if layer in _submodels(model):
            names += map_layers(layer, prefix + layer.name + "/")
        if _is_map(layer):
            names.append(prefix + layer.name)
    return names


def _layer_at(model, path: list[str]):
    for name in path:
        model = model.get_layer(name)
    return model


def map_width(model, path: list[str]) -> int:
    return int(min(_layer_at(model, path).output.shape[1:3]))


def _default_path(model) -> list[str] | None:
    """The last feature-map layer at least MIN_CAM_SIDE cells wide, looking inside a
    backbone too (a 5x5 map locates nothing); the last map of all if none is that wide."""
    maps = [p.split("/") for p in map_layers(model)]
    if not maps:
        return None
    wide = [p for p in maps if map_width(model, p) >= MIN_CAM_SIDE]
    return (wide or maps)[-1]


def default_layers(detector) -> list[str]:
    """The Grad-CAM layer of a single model, or of each member of an ensemble."""
    return ["/".join(p) for p in _default_paths(detector.model)]


def _default_paths(model) -> list[list[str]]:
    subs = _submodels(model)
    # An ensemble's members are whole classifiers with no map in the outer graph: one map each.
    if subs and not any(_is_map(layer) for layer in model.layers):
        return [[m.name] + p for m in subs for p in _default_paths(m)]
    own = _default_path(model)
    if own is None:
        raise ValueError(f"model {model.name} has no convolutional feature map to explain")
    return [own]


def _resolve(model, name: str) -> list[str]:
    """A layer path from NAME or A/B/NAME; a bare NAME is searched in nested members too."""
    if "/" in name:
        parts, m = name.split("/"), model
        for i, part in enumerate(parts):
            try:
                layer = m.get_layer(part)
            except ValueError:
                layer = None
            if layer is None or (i < len(parts) - 1 and layer not in _submodels(m)):
                break
            m = layer
        else:
            if _is_map(layer):
                return parts
    else:
        matches = [p for p in map_layers(model) if p.split("/")[-1] == name]
        if len(matches) == 1:
            return matches[0].split("/")
        if len(matches) > 1:
            raise ValueError(f"layer {name!r} is in several members; say which: {', '.join(matches)}")
    known = map_layers(model)
    shown = ", ".join(known[-12:]) + (f" (and {len(known) - 12} more: see --list-layers)" if len(known) > 12 else "")
    raise ValueError(f"no feature-map layer {name!r} in {model.name}; choose one of: {shown}")


def _tapped(model, paths: list[list[str]]):
    """A function x -> (maps, output): the model's output plus the activations at `paths`
    (in the order given), from one forward pass, so that gradients connect them.

    Layers of the model itself are plain extra outputs. Layers inside a member are reached
    by cloning the model with that member swapped for a wrapper that runs the member's own
    tapped function and keeps its maps."""
    import keras

    heads = list(dict.fromkeys(p[0] for p in paths))
    members = {m.name for m in _submodels(model)}
    # A member's `.output` is its own graph's, not its output here, so members go the long way.
    if all(len(p) == 1 for p in paths) and not members & set(heads):
        inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
        m = keras.Model(inputs, [[model.get_layer(n).output for n in heads], model.output])

        def run_direct(x, **_):
            maps, out = m(x, training=False)
            return [maps[heads.index(p[0])] for p in paths], out

        return run_direct

    class TapLayer(keras.layers.Layer):
        def __init__(self, fn, **kw):
            super().__init__(**kw)
            self.fn, self.maps = fn, []

        def call(self, *args, **kwargs):
            self.maps, out = self.fn(*args, **kwargs)
            return out

    layouts = {}  # head -> (wants its own output, [sub-paths inside it])
    fns = {}
    for name in heads:
        layer = model.get_layer(name)
        subs = [p[1:] for p in paths if p[0] == name and len(p) > 1]
        own = any(p == [name] for p in paths)
        inner = _tapped(layer, subs) if subs else None
        layouts[name] = (own, subs)

        def fn(*a, _layer=layer, _inner=inner, _own=own, **k):
            maps, out = _inner(*a) if _inner else ([], _layer(*a, **k))
            return ([out] if _own else []) + list(maps), out

        fns[name] = (layer, fn)

    def clone_fn(layer):
        if layer.name in fns and fns[layer.name][0] is layer:
            return TapLayer(fns[layer.name][1], name=layer.name)
        return layer  # shared, not copied: the same weights

    clone = keras.models.clone_model(model, clone_function=clone_fn)
    taps = {layer.name: layer for layer in clone.layers if isinstance(layer, TapLayer)}

    def run_cloned(x, **_):
        out = clone(x, training=False)
        maps = []
        for p in paths:
            own, subs = layouts[p[0]]
            i = 0 if len(p) == 1 else int(own) + subs.index(p[1:])
            maps.append(taps[p[0]].maps[i])
        return maps, out

    return run_cloned


# Tapped models are slow to build: keep one per (model, layers). The lock makes the
# taps' side-channel safe when a server calls from several threads.
_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def _cached_tapped(model, paths):
    key = tuple(tuple(p) for p in paths)
    per_model = _CACHE.setdefault(model, {})
    if key not in per_model:
        per_model[key] = _tapped(model, paths)
    return per_model[key]


# --- Grad-CAM ---------------------------------------------------------------------------
def gradcam(detector, image: np.ndarray, target: str = "fake", layer_name: str | None = None) -> np.ndarray:
    """Grad-CAM heat (H, W) in 0..1 over an RGB uint8 image of any size: where the detector
    found evidence for `target` ("fake" or "real"). For an ensemble, each member's map is
    taken with respect to the ensemble's own score and the maps are summed, so a member
    counts as much as it moved the combined verdict. Zero outside the centre square."""
    import tensorflow as tf

    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}")
    model = detector.model
    paths = [_resolve(model, layer_name)] if layer_name else _default_paths(model)
    x = tf.constant(detector.prepare(image)[None])
    with _LOCK:
        fn = _cached_tapped(model, paths)
        with tf.GradientTape() as tape:
            tape.watch(x)
            maps, out = fn(x)
            p = out["p_fake"] if isinstance(out, dict) else out
            p = tf.clip_by_value(tf.reshape(p, [-1])[0], 1e-6, 1 - 1e-6)
            z = tf.math.log(p) - tf.math.log(1 - p)  # the logit: no vanishing gradient when saturated
            score = z if target == "fake" else -z
        grads = tape.gradient(score, maps)
    size = detector.spec.input_size
    total = np.zeros((size, size), np.float64)
    for a, g in zip(maps, grads):
        if g is None:
            continue  # this map does not reach the score
        a, g = np.asarray(a)[0], np.asarray(g)[0]
        weights = g.mean(axis=(0, 1))  # one weight per channel: its average gradient
        cam = (a * weights).sum(axis=-1)
        total += _resize(cam, size, size)
    return _normalised(_place_in_image(np.maximum(total, 0), image.shape[:2]))


def _normalised(heat: np.ndarray) -> np.ndarray:
    """Scaled so the hottest pixel is 1 (all zero stays zero: nothing raised the score)."""
    top = heat.max()
    return heat / top if top > 0 else heat


def _resize(a: np.ndarray, h: int, w: int, nearest: bool = False) -> np.ndarray:
    import cv2

    return cv2.resize(a.astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR)


def centre_square(shape) -> tuple[int, int, int]:
    """(top, left, side) of the square the preprocessing contract keeps."""
    h, w = shape[:2]
    s = min(h, w)
    return (h - s) // 2, (w - s) // 2, s


def _place_in_image(square: np.ndarray, shape, nearest: bool = False) -> np.ndarray:
    top, left, s = centre_square(shape)
    heat = np.zeros(shape[:2], np.float32)
    heat[top : top + s, left : left + s] = np.maximum(_resize(square, s, s, nearest), 0)
    return heat


# The heat drawn alone, for a page that lays it over its own picture and boxes: at most this
# opaque, so the face stays visible under its hottest part; under COLD_HEAT, nothing is drawn,
# so a face's crop is not painted as a blue square onto hair and background.
LAYER_ALPHA = 0.5
COLD_HEAT = 0.2


def heat_layer(heat: np.ndarray, alpha: float = LAYER_ALPHA, cold: float = COLD_HEAT) -> np.ndarray:
    """RGBA (H, W, 4) uint8: `heat` (0..1) in the 'jet' colours, opacity rising from 0 at
    `cold` to `alpha` at the hottest; transparent where the heat is zero (away from the faces)."""
    from matplotlib import colormaps

    h = np.clip(heat, 0, 1)
    colours = colormaps["jet"](h)[..., :3] * 255
    opacity = alpha * np.clip((h - cold) / (1 - cold), 0, 1) * 255
    return np.concatenate([colours, opacity[..., None]], axis=-1).round().astype(np.uint8)


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.6, outline: bool = True) -> np.ndarray:
    """The image with `heat` (same H, W, 0..1) laid over it in the 'jet' colours. Opacity
    follows the heat, so cold regions keep their own pixels. The analysed centre square is
    outlined when the image is not square."""
    from matplotlib import colormaps

    if heat.shape != image.shape[:2]:
        raise ValueError(f"heat {heat.shape} does not match the image {image.shape[:2]}")
    h = np.clip(heat, 0, 1)[..., None]
    colours = colormaps["jet"](h[..., 0])[..., :3] * 255
    out = image.astype(np.float32) * (1 - alpha * h) + colours * (alpha * h)
    out = np.clip(out, 0, 255).astype(np.uint8)
    top, left, s = centre_square(image.shape)
    if outline and (image.shape[0] != image.shape[1]):
        t = max(1, s // 150)
        for y0, y1, x0, x1 in ((top, top + t, left, left + s), (top + s - t, top + s, left, left + s),
                               (top, top + s, left, left + t), (top, top + s, left + s - t, left + s)):
            out[y0:y1, x0:x1] = (255, 255, 255)
    return out


def png_bytes(rgb: np.ndarray) -> bytes:
    """RGB or RGBA pixels as PNG bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(buf, "PNG", optimize=True)
    return buf.getvalue()


# --- LIME -------------------------------------------------------------------------------
class LimeResult:
    """heat (H, W) in 0..1: superpixels that raised `target`, over the whole image;
    segments (size, size): superpixel ids on the model input; weights {segment: weight}
    (positive: evidence for target); score: R^2 of LIME's local linear fit."""

    def __init__(self, heat, segments, weights, score, target):
        self.heat, self.segments, self.weights, self.score, self.target = heat, segments, weights, score, target


def lime_explain(detector, image: np.ndarray, num_samples: int = 500, target: str = "fake",
                 n_segments: int = 50, seed: int = 0) -> LimeResult:
    """LIME on the model input (the centre square at the model's size): hide random sets of
    SLIC superpixels, score each copy, and fit which superpixels explain p(fake)."""
    from lime import lime_image
    from skimage.segmentation import slic

    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}")
    prepared = np.clip(np.round(detector.prepare(image)), 0, 255).astype(np.uint8)

    def classify(batch):
        p, _ = detector.raw_scores(np.asarray(batch, np.float32), batch_size=50)
        return np.stack([1 - p, p], axis=1)

    def segment(img):
        return slic(img, n_segments=n_segments, compactness=10, start_label=0)

    explainer = lime_image.LimeImageExplainer(random_state=seed)
    exp = explainer.explain_instance(prepared, classify, labels=(1,), top_labels=None, num_samples=num_samples,
                                     batch_size=50, segmentation_fn=segment, random_seed=seed)
    sign = 1.0 if target == "fake" else -1.0
    weights = {int(k): float(w) * sign for k, w in exp.local_exp[1]}
    square = np.zeros(exp.segments.shape, np.float32)
    for k, w in weights.items():
        square[exp.segments == k] = max(w, 0.0)
    heat = _normalised(_place_in_image(square, image.shape[:2], nearest=True))
    return LimeResult(heat, exp.segments, weights, float(exp.score), target)


# --- feature maps -----------------------------------------------------------------------
def feature_maps(detector, image: np.ndarray, layer_name: str, max_maps: int = 32) -> bytes:
    """A PNG grid of the input and the `max_maps` channels of `layer_name` that respond
    most strongly to this image (mean activation), each scaled to its own range."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = _resolve(detector.model, layer_name)
    x = detector.prepare(image)[None]
    with _LOCK:
        maps, _ = _cached_tapped(detector.model, [path])(x)
    a = np.asarray(maps[0])[0]  # (h, w, c)
    order = np.argsort(-a.mean(axis=(0, 1)))[:max_maps]
    n = len(order) + 1
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.7 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    axes[0, 0].imshow(np.clip(x[0], 0, 255).astype(np.uint8))
    axes[0, 0].set_title("input", fontsize=7)
    for i, c in enumerate(order, start=1):
        ax = axes.ravel()[i]
        ax.imshow(a[..., c], cmap="viridis")
        ax.set_title(f"ch {c}", fontsize=7)
    fig.suptitle(f"{'/'.join(path)}: {a.shape[0]}x{a.shape[1]}, strongest {len(order)} of {a.shape[2]} channels", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
