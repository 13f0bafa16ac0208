"""Augmentations for training, as TensorFlow ops that run inside tf.data.

Every op takes a float32 image (H, W, 3) in 0..255 and a stateless seed (a [2] int tensor),
and returns an image of the same shape and range, so the run is repeatable for a seed.

Two kinds:
- geometry: small rotation, random crop + zoom, horizontal flip;
- the web's degradations: JPEG recompression (quality 40..95), down- then up-scaling (down
  to the smallest face crop judged), blur and noise, each applied to a share of the images.

`web_degrade` is the fixed degradation that evaluation applies to make web-like copies.
`same_chain` is the one processing chain that `unmask train --same-chain` pushes every
training image through, real or fake (issue 17: the collections differ in framing, size and
compression, and a detector can learn those instead of the manipulation); training/shortcuts.py
measures how much of the collections' signatures it leaves.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import tensorflow as tf


@dataclass(frozen=True)
class AugmentConfig:
    max_rotation_deg: float = 10.0
    min_crop: float = 0.8  # crop side as a share of the image side, then zoom back
    flip: bool = True
    p_jpeg: float = 0.5
    jpeg_quality: tuple[int, int] = (40, 95)
    p_rescale: float = 0.4
    # Shrink to at least this share of the side. None: down to the smallest face crop ever
    # judged (rescale_floor, 77 px), which steadies a face's p(fake) across sizes (issue 20) but
    # cost unseen generators in the left-out runs (docs/EVALUATION.md: genphotos caught at 5%
    # false alarms 1.6% against 15.9%, 31.3% against 43.6%, two seeds), so not the default.
    min_rescale: float | None = 0.4
    p_blur: float = 0.1
    max_blur_sigma: float = 1.5
    p_noise: float = 0.1
    max_noise_std: float = 8.0
    same_chain: bool = False  # then every image also goes through same_chain, last


def _uniform(seed, lo=0.0, hi=1.0):
    return tf.random.stateless_uniform([], seed, lo, hi)


def _maybe(p: float, seed, fn, image):
    """fn(image) with probability p, else image."""
    if p <= 0:
        return image
    return tf.cond(_uniform(seed) < p, lambda: fn(image), lambda: image)


# --- geometry -----------------------------------------------------------------------------
def random_flip(image, seed):
    return tf.image.stateless_random_flip_left_right(image, seed)


def random_rotation(image, seed, max_degrees: float = 10.0):
    """Rotate about the centre by up to +-max_degrees, reflecting at the borders."""
    angle = _uniform(seed, -max_degrees, max_degrees) * (math.pi / 180.0)
    h = tf.cast(tf.shape(image)[0], tf.float32)
    w = tf.cast(tf.shape(image)[1], tf.float32)
    cos, sin = tf.cos(angle), tf.sin(angle)
    # Output pixel (x, y) samples input at A @ (x, y, 1): rotation about the centre.
    cx, cy = (w - 1) / 2, (h - 1) / 2
    transform = tf.stack([cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy, 0.0, 0.0])
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None], transforms=transform[None], output_shape=tf.shape(image)[:2],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT")
    return tf.reshape(out[0], tf.shape(image))


def random_crop_zoom(image, seed, min_crop: float = 0.8):
    """Crop a random square of side min_crop..1 of the image and zoom it back to full size."""
    s1, s2 = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    shape = tf.shape(image)
    h, w = shape[0], shape[1]
    frac = _uniform(s1, min_crop, 1.0)
    ch = tf.maximum(tf.cast(tf.cast(h, tf.float32) * frac, tf.int32), 1)
    cw = tf.maximum(tf.cast(tf.cast(w, tf.float32) * frac, tf.int32), 1)
    crop = tf.image.stateless_random_crop(image, tf.stack([ch, cw, 3]), s2)
    return tf.reshape(tf.image.resize(crop, [h, w], method="bilinear"), shape)


# --- web degradations ---------------------------------------------------------------------
def random_jpeg(image, seed, quality=(40, 95)):
    """Re-encode as JPEG at a random quality (TF quantises to uint8 on the way)."""
    out = tf.image.stateless_random_jpeg_quality(image / 255.0, quality[0], quality[1], seed)
    return tf.reshape(out * 255.0, tf.shape(image))


def random_rescale(image, seed, min_scale: float = 0.4):
    """Shrink by a random factor (min_scale..1, antialiased), then enlarge back."""
    shape = tf.shape(image)
    scale = _uniform(seed, min_scale, 1.0)
    small = tf.maximum(tf.cast(tf.cast(shape[:2], tf.float32) * scale, tf.int32), 8)
    out = tf.image.resize(image, small, method="bilinear", antialias=True)
    return tf.reshape(tf.image.resize(out, shape[:2], method="bilinear"), shape)


def smallest_judged_crop() -> int:
    """The side of the smallest face crop judged: crop margin x min_face_side (the face contract)."""
    from models.faces import face_contract, round_half_up

    c = face_contract()
    return round_half_up(c.crop_margin * c.min_face_side)


def rescale_floor(side):
    """The smallest rescale factor for an image of `side` px (a face crop at the model's
    size): the one that shows it as small as the smallest crop judged, at most 1."""
    return tf.minimum(tf.cast(smallest_judged_crop(), tf.float32) / tf.cast(side, tf.float32), 1.0)


def gaussian_blur(image, sigma):
    """Separable Gaussian blur with a 7-tap kernel (sigma may be a tensor)."""
    x = tf.range(-3, 4, dtype=tf.float32)
    k = tf.exp(-(x**2) / (2.0 * tf.maximum(sigma, 1e-3) ** 2))
    k = k / tf.reduce_sum(k)
    kh = tf.tile(tf.reshape(k, [1, 7, 1, 1]), [1, 1, 3, 1])
    kv = tf.tile(tf.reshape(k, [7, 1, 1, 1]), [1, 1, 3, 1])
    padded = tf.pad(image[None], [[0, 0], [3, 3], [3, 3], [0, 0]], mode="REFLECT")
    out = tf.nn.depthwise_conv2d(padded, kh, [1, 1, 1, 1], "VALID")
    out = tf.nn.depthwise_conv2d(out, kv, [1, 1, 1, 1], "VALID")
    return tf.reshape(out[0], tf.shape(image))


def random_blur(image, seed, max_sigma: float = 1.5):
    return gaussian_blur(image, _uniform(seed, 0.3, max_sigma))


def random_noise(image, seed, max_std: float = 8.0):
    s1, s2 = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    std = _uniform(s1, 1.0, max_std)
    return image + std * tf.random.stateless_normal(tf.shape(image), s2)


# --- the same processing chain for every image ---------------------------------------------
@dataclass(frozen=True)
class Chain:
    """Crop jitter, rescale and back, re-JPEG: each applied to every image (p = 1)."""
    min_crop: float = 0.9  # crop jitter: a square of 90-100% of the side, anywhere, zoomed back
    min_scale: float = 0.5  # shrink to 50-100% and enlarge back
    jpeg_quality: tuple[int, int] = (60, 95)


SAME_CHAIN = Chain()


def same_chain(image, seed, chain: Chain = SAME_CHAIN):
    """`image` (float32 0..255, (H, W, 3)) through the chain, each step from its own sub-seed:
    crop jitter, rescale, then JPEG last, as on the web. Same shape, clipped to 0..255."""
    s = tf.unstack(tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3))
    x = random_crop_zoom(tf.cast(image, tf.float32), s[0], chain.min_crop)
    x = random_rescale(x, s[1], chain.min_scale)
    return random_jpeg(tf.clip_by_value(x, 0.0, 255.0), s[2], chain.jpeg_quality)


# --- all together -------------------------------------------------------------------------
def augment(image, seed, config: AugmentConfig = AugmentConfig()):
    """Geometry, then web degradations, each from its own sub-seed, then (config.same_chain)
    the same chain for every image; output clipped to 0..255."""
    seeds = tf.unstack(tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 13))
    c = config
    x = tf.cast(image, tf.float32)
    if c.flip:
        x = random_flip(x, seeds[0])
    if c.max_rotation_deg > 0:
        x = _maybe(0.5, seeds[1], lambda im: random_rotation(im, seeds[2], c.max_rotation_deg), x)
    if c.min_crop < 1:
        x = _maybe(0.5, seeds[3], lambda im: random_crop_zoom(im, seeds[4], c.min_crop), x)
    floor = c.min_rescale if c.min_rescale is not None else rescale_floor(tf.reduce_min(tf.shape(x)[:2]))
    x = _maybe(c.p_rescale, seeds[5], lambda im: random_rescale(im, seeds[6], floor), x)
    x = _maybe(c.p_blur, seeds[7], lambda im: random_blur(im, seeds[8], c.max_blur_sigma), x)
    x = _maybe(c.p_noise, seeds[9], lambda im: random_noise(im, seeds[10], c.max_noise_std), x)
    # JPEG last, as on the web: whatever happened before gets compressed.
    x = _maybe(c.p_jpeg, seeds[11], lambda im: random_jpeg(tf.clip_by_value(im, 0, 255), seeds[12], c.jpeg_quality), x)
    if c.same_chain:
        # Its own seed, so that the steps before draw what they drew without the chain.
        x = same_chain(tf.clip_by_value(x, 0.0, 255.0), tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), 17))
    return tf.clip_by_value(x, 0.0, 255.0)


def face_size_degrade(image_uint8: np.ndarray, face_px: int, margin: float | None = None) -> np.ndarray:
    """A face crop as it is cut from a picture in which the face is `face_px` tall: the crop
    (margin x the face box; the contract's margin by default) shrunk, antialiased (Pillow
    bicubic, as image hosts shrink), to round(margin x face_px) a side. A crop that is
    already that small is returned as it is: nothing is enlarged."""
    from PIL import Image

    if margin is None:
        from models.faces import face_contract

        margin = face_contract().crop_margin
    side = max(1, round(margin * face_px))
    img = Image.fromarray(np.asarray(image_uint8, dtype=np.uint8))
    if max(img.size) <= side:
        return np.asarray(img)
    return np.asarray(_shrink(img, side / max(img.size)), dtype=np.uint8)


def _shrink(img, scale: float):
    """A Pillow image scaled by `scale` (<= 1), antialiased bicubic, as image hosts shrink."""
    from PIL import Image

    w, h = img.size
    return img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BICUBIC)


def web_degrade(image_uint8: np.ndarray, scale: float = 0.5, quality: int = 60) -> np.ndarray:
    """The fixed web degradation for evaluation: shrink by `scale` (Pillow, antialiased, as
    image hosts do), then JPEG at `quality`. uint8 (H, W, 3) in, uint8 out (smaller)."""
    from PIL import Image

    img = Image.fromarray(np.asarray(image_uint8, dtype=np.uint8))
    if scale != 1:
        img = _shrink(img, scale)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=int(quality))
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"), dtype=np.uint8)
