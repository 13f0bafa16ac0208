"""The Stable Diffusion invisible watermark, decoded with NumPy alone.

Stable Diffusion's reference scripts (v1/v2: the bytes "StableDiffusionV1"; SDXL: a 48-bit
message) mark every picture with the `invisible-watermark` package's `dwtDct` scheme: in
the U channel of YUV, the Haar wavelet's approximation band is cut into 4x4 blocks, and in
each block the largest coefficient but the first is moved to a quarter (bit 0) or three
quarters (bit 1) of a step of 36. Reading it back needs only that band: bit = (|value| mod 36)
> 18, averaged over every block that carries the same bit.

The mark survives PNG and resizing-free edits, not JPEG: a JPEG without it says nothing.
"""
from __future__ import annotations

import numpy as np

SCALE = 36.0  # the step of the U channel (imwatermark's scales [0, 36, 36]; decode reads U only)
BLOCK = 4
AGREEMENT = 0.9  # of the message's bits that must match; by chance 44 of 48 is ~1e-9


def _bits(data: bytes) -> np.ndarray:
    return np.unpackbits(np.frombuffer(data, np.uint8))


MESSAGES = {
    "Stable Diffusion v1/v2": _bits(b"StableDiffusionV1"),
    "Stable Diffusion XL": np.array([int(b) for b in bin(0b101100111110110010010000011110111011000110011110)[2:]], np.uint8),
}


def u_channel(rgb: np.ndarray) -> np.ndarray:
    """OpenCV's BGR2YUV U channel of 8-bit RGB, rounded to 8 bits as it stores it."""
    x = rgb[..., :3].astype(np.float64)
    y = 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]
    return np.clip(np.rint((x[..., 2] - y) * 0.492111 + 128.0), 0, 255)


def block_bits(rgb: np.ndarray) -> np.ndarray:
    """The bit each 4x4 block of the Haar approximation band holds, in reading order."""
    u = u_channel(rgb)
    h, w = (u.shape[0] // 4) * 4, (u.shape[1] // 4) * 4
    u = u[:h, :w]
    ca = (u[0::2, 0::2] + u[0::2, 1::2] + u[1::2, 0::2] + u[1::2, 1::2]) / 2.0  # pywt haar dwt2's cA
    bh, bw = ca.shape[0] // BLOCK, ca.shape[1] // BLOCK
    blocks = ca[: bh * BLOCK, : bw * BLOCK].reshape(bh, BLOCK, bw, BLOCK).swapaxes(1, 2).reshape(-1, BLOCK * BLOCK)
    pos = np.argmax(np.abs(blocks[:, 1:]), axis=1) + 1
    val = np.abs(blocks[np.arange(len(blocks)), pos])
    return ((val % SCALE) > 0.5 * SCALE).astype(np.float64)


def decode(rgb: np.ndarray, length: int) -> np.ndarray | None:
    """The `length`-bit message as imwatermark's decoder reads it, or None when the picture has
    fewer blocks than bits."""
    bits = block_bits(rgb)
    if len(bits) < length:
        return None
    sums = np.bincount(np.arange(len(bits)) % length, weights=bits, minlength=length)
    counts = np.bincount(np.arange(len(bits)) % length, minlength=length)
    return (sums / counts * 255 > 127).astype(np.uint8)


def find_watermark(rgb, kind: str | None = None) -> dict:
    """{found, generator, agreement, note}: which known message the pixels carry, if any."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[0] < 8 * BLOCK or rgb.shape[1] < 8 * BLOCK:
        return {"found": False, "generator": None, "agreement": None,
                "note": "the picture is too small to carry the Stable Diffusion watermark; it was not looked for"}
    best = {"found": False, "generator": None, "agreement": None, "note": None}
    for name, message in MESSAGES.items():
        got = decode(rgb, len(message))
        if got is None:
            continue
        agreement = float(np.mean(got == message))
        if best["agreement"] is None or agreement > best["agreement"]:
            best.update(agreement=round(agreement, 3))
        if agreement >= AGREEMENT:
            return {"found": True, "generator": name, "agreement": round(agreement, 3),
                    "note": f"the pixels carry the {name} invisible watermark ({round(100 * agreement)}% of its bits)"}
    return best
