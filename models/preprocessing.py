"""How a file becomes model input, read from the one contract in preprocessing.json.

Two steps:
- `load_image` decodes and validates a file (or bytes) into an RGB uint8 array, with
  errors that say what is wrong.
- `resize_for_model` applies the contract's crop and resize, giving float32 in 0..255.
  The models rescale inside their first layer, with scale and offset from the contract.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

CONTRACT_PATH = Path(__file__).with_name("preprocessing.json")

# Decoding more pixels than this is refused before decoding (decompression bombs).
DEFAULT_MAX_PIXELS = 50_000_000
MIN_SHORT_SIDE = 150  # training data below this is skipped; inference accepts smaller
IMAGE_FORMATS = {"JPEG", "PNG", "WEBP", "GIF", "BMP", "MPO"}
# What Unmask reads, said the same way by the CLI and the server.
ACCEPTED = "a JPEG, PNG, WebP, GIF or BMP image, or an MP4, WebM or MOV video"


@lru_cache(maxsize=1)
def contract() -> dict:
    return json.loads(CONTRACT_PATH.read_text())


@dataclass(frozen=True)
class InputSpec:
    """What one architecture expects: square input side and the in-model rescaling."""

    input_size: int
    scale: float
    offset: float

    def as_dict(self) -> dict:
        c = contract()
        return {
            "input_size": self.input_size,
            "color": c["color"],
            "crop": c["crop"],
            "resize": c["resize"],
            "resize_doc": c["resize_doc"],
            "input_dtype": c["input_dtype"],
            "input_range": c["input_range"],
            "scale": self.scale,
            "offset": self.offset,
        }


def input_spec(architecture: str) -> InputSpec:
    models = contract()["models"]
    if architecture not in models:
        raise KeyError(f"no preprocessing defined for {architecture!r}; known: {sorted(models)}")
    m = models[architecture]
    return InputSpec(int(m["input_size"]), float(m["scale"]), float(m["offset"]))


class ImageError(ValueError):
    """A file that cannot be used as an image. `reason` is a short machine-readable code."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def load_image(source, *, max_pixels: int = DEFAULT_MAX_PIXELS, min_short_side: int = 0) -> np.ndarray:
    """Decode a path or bytes into an RGB uint8 array (H, W, 3), applying EXIF orientation
    the way browsers do. GIFs give their first frame. Raises ImageError."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    data = source if isinstance(source, (bytes, bytearray)) else None
    try:
        fp = io.BytesIO(data) if data is not None else open(source, "rb")
    except OSError as e:
        raise ImageError("unreadable", f"Cannot open {source}: {e.strerror or e}.") from e
    with fp:
        try:
            # Our own pixel check below replaces Pillow's global bomb limit.
            with Image.open(fp) as img:
                fmt = img.format
                if fmt not in IMAGE_FORMATS:
                    raise ImageError("unsupported", f"{fmt} images are not read. Send {ACCEPTED}.")
                w, h = img.size
                if w * h > max_pixels:
                    raise ImageError(
                        "too_many_pixels",
                        f"The image is {w}x{h} = {w * h:,} pixels, over the limit of {max_pixels:,} "
                        "(possible decompression bomb). Downscale it first.",
                    )
                img.seek(0)
                img.load()
                img = ImageOps.exif_transpose(img)
                rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
        except ImageError:
            raise
        except UnidentifiedImageError as e:
            fp.seek(0)
            what = "a text file" if looks_like_text(fp.read(4096)) else "not an image Unmask reads"
            raise ImageError("not_an_image", f"This is {what}. Send {ACCEPTED}.") from e
        except Image.DecompressionBombError as e:
            raise ImageError("too_many_pixels", f"Refused as a decompression bomb: {e}.") from e
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            msg = str(e)
            if "truncated" in msg or isinstance(e, EOFError):
                fp.seek(0)
                raise ImageError("truncated", cut_short(fp.read(), fmt)) from e
            raise ImageError("corrupt", f"The image data is damaged ({msg}). Export or download the file again.") from e
    if rgb.ndim != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ImageError("corrupt", "The image has no pixels.")
    if min(rgb.shape[:2]) < min_short_side:
        raise ImageError(
            "too_small", f"The image is {rgb.shape[1]}x{rgb.shape[0]} px, under {min_short_side} px on its short side."
        )
    return rgb


def looks_like_text(head: bytes) -> bool:
    """Whether a file's first bytes read as text (UTF-8 without control characters): a note,
    a web page or JSON renamed as a picture."""
    head = head[:4096]
    if not head or b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 3:  # only a character cut by the 4096-byte window is allowed
            return False
        text = head[: e.start].decode("utf-8")
    return not any(ord(c) < 32 and c not in "\t\n\r\f" for c in text)


def missing_rows(data: bytes) -> float | None:
    """The share of a cut-short JPEG's rows that its bytes never reach (from the bottom up),
    or None when it cannot be told. With an end marker put after the bytes that came, the
    decoder draws what they hold and leaves each row it never reached one flat colour."""
    from PIL import Image

    if not data.startswith(b"\xff\xd8"):
        return None
    try:
        with Image.open(io.BytesIO(data + b"\xff\xd9")) as img:
            rgb = np.asarray(img.convert("RGB"))
    except (OSError, SyntaxError, ValueError, EOFError):
        return None
    flat = (rgb.max(axis=1) == rgb.min(axis=1)).all(axis=-1)  # each row: one colour all along
    if flat.all():
        return None
    return int(np.argmin(flat[::-1])) / len(flat)  # the flat rows at the bottom


def cut_short(data: bytes, fmt: str | None) -> str:
    """What to tell a person about a file whose data stops before the picture ends."""
    kind = {"JPEG": "JPEG", "MPO": "JPEG", "WEBP": "WebP"}.get(fmt or "", fmt or "image")
    size = f"{len(data) / 1024:.1f} KB" if len(data) >= 1024 else f"{len(data)} bytes"
    share = missing_rows(data)
    lost = (f"about {round(100 * share)}% of the picture (its bottom part) is missing" if share and share >= 0.01
            else "part of the picture is missing")
    return (f"The {kind} file is cut short: it ends after {size}, and {lost}. The upload or download was "
            "probably interrupted: get the complete file again and send that.")


def box_then_bilinear(image, k: int, out_h: int, out_w: int):
    """Average k x k blocks (dropping the last h % k rows and w % k columns), then resize
    bilinearly to out_h x out_w with half-pixel centres and no antialiasing. float32 0..255.
    The one resize of the contract: models (on a centre square) and the face finder (on the
    whole image) use it, and extension/src/preprocess.js mirrors it."""
    import tensorflow as tf

    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and k > 1:
        # The same average on the CPU, several times faster on large pictures (the face
        # search's letterbox): block sums in integers, exact like TensorFlow's float32 sums
        # of whole numbers below 2**24, then the same one division.
        nh, nw = image.shape[0] // k, image.shape[1] // k
        rows = image[: nh * k, : nw * k].reshape(nh, k, nw * k * 3).sum(axis=1, dtype=np.uint32)
        x = rows.reshape(nh, nw, k, 3).sum(axis=2, dtype=np.uint32).astype(np.float32) / np.float32(k * k)
    else:
        x = tf.cast(image, tf.float32)
        nh, nw = tf.shape(x)[0] // k, tf.shape(x)[1] // k
        x = tf.reduce_mean(tf.reshape(x[: nh * k, : nw * k, :], [nh, k, nw, k, 3]), axis=[1, 3])
    return tf.image.resize(x, [out_h, out_w], method="bilinear", antialias=False)


def resize_for_model(image, input_size: int):
    """The contract's crop and resize in TensorFlow ops: uint8/float (H, W, 3) -> float32
    (input_size, input_size, 3) in 0..255. extension/src/preprocess.js mirrors it op for op."""
    import tensorflow as tf

    h, w = tf.shape(image)[0], tf.shape(image)[1]
    s = tf.minimum(h, w)
    x = image[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s, :]
    # Box-average by an integer factor first, so that large images are not aliased.
    k = tf.maximum(s // input_size, 1)
    return tf.ensure_shape(box_then_bilinear(x, k, input_size, input_size), [input_size, input_size, 3])


def preprocess_file(source, input_size: int, **load_kwargs) -> np.ndarray:
    """load_image then resize_for_model, as a numpy float32 array."""
    return np.asarray(resize_for_model(load_image(source, **load_kwargs), input_size))
