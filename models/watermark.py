"""The Stable Diffusion invisible watermark, decoded with NumPy alone.

Stable Diffusion's reference scripts (v1/v2: the bytes "StableDiffusionV1"; SDXL: a 48-bit
message) mark every picture with the `invisible-watermark` package's `dwtDct` scheme: in
the U channel of YUV, the Haar wavelet's approximation band is cut into 4x4 blocks, and in
each block the largest coefficient but the first is moved to a quarter (bit 0) or three
quarters (bit 1) of a step of 36. Reading it back needs only that band: bit = (|value| mod 36)
> 18, averaged over every block that carries the same bit (here: over the blocks of half a
megapixel around the middle, so that a large picture costs no more than that).

The numbers and messages are in models/provenance.json (`watermark`), shared with the
extension's twin (extension/src/provenance.js sdWatermark), which must read the same bits.
The mark survives PNG and resizing-free edits, not JPEG: a JPEG without it says nothing.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

RULES = json.loads((Path(__file__).resolve().parent / "provenance.json").read_text())["watermark"]
SCALE = float(RULES["scale"])
BLOCK = int(RULES["block"])
AGREEMENT = float(RULES["agreement"])
MIN_SIDE = int(RULES["min_side"])
MAX_BLOCKS = int(RULES["max_blocks"])  # half a megapixel: the cost stays flat on large pictures


def _message(spec: dict) -> np.ndarray:
    if "ascii" in spec:
        return np.unpackbits(np.frombuffer(spec["ascii"].encode("ascii"), np.uint8))
    return np.array([int(b) for b in spec["bits"]], np.uint8)


MESSAGES = {name: _message(spec) for name, spec in RULES["messages"].items()}


def u_channel(rgb: np.ndarray) -> np.ndarray:
    """OpenCV's BGR2YUV U channel of 8-bit RGB, rounded to 8 bits as it stores it."""
    x = rgb[..., :3].astype(np.float64)
    y = 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]
    return np.clip(np.rint((x[..., 2] - y) * 0.492111 + 128.0), 0, 255)


def block_bits(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The bit each 4x4 block of the Haar approximation band holds, and each block's number in
    reading order: whole rows of blocks around the middle, at most MAX_BLOCKS of them."""
    h, w = (rgb.shape[0] // 4) * 4, (rgb.shape[1] // 4) * 4
    bh, bw = h // 2 // BLOCK, w // 2 // BLOCK
    rows = max(1, min(bh, MAX_BLOCKS // max(bw, 1)))  # rows of blocks read
    r0 = (bh - rows) // 2
    u = u_channel(rgb[2 * BLOCK * r0: 2 * BLOCK * (r0 + rows), : 2 * BLOCK * bw])
    ca = (u[0::2, 0::2] + u[0::2, 1::2] + u[1::2, 0::2] + u[1::2, 1::2]) / 2.0  # pywt haar dwt2's cA
    blocks = ca.reshape(rows, BLOCK, bw, BLOCK).swapaxes(1, 2).reshape(-1, BLOCK * BLOCK)
    pos = np.argmax(np.abs(blocks[:, 1:]), axis=1) + 1
    val = np.abs(blocks[np.arange(len(blocks)), pos])
    return ((val % SCALE) > 0.5 * SCALE).astype(np.float64), r0 * bw + np.arange(len(blocks))


def decode(rgb: np.ndarray, length: int, read: tuple | None = None) -> np.ndarray | None:
    """The `length`-bit message as imwatermark's decoder reads it (each bit the average of the
    blocks that carry it), or None when fewer blocks than bits were read. `read`:
    block_bits(rgb), when already read."""
    bits, number = block_bits(rgb) if read is None else read
    if len(bits) < length:
        return None
    sums = np.bincount(number % length, weights=bits, minlength=length)
    counts = np.bincount(number % length, minlength=length)
    return (sums / counts * 255 > 127).astype(np.uint8)


def find_watermark(rgb) -> dict:
    """{found, generator, agreement, note}: which known message the pixels carry, if any.
    agreement: the best share of a message's bits that matched; note: a sentence for a
    finding (found, or too small to look), else None."""
    from models.wording import wording

    w = wording()["provenance"]
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[0] < MIN_SIDE or rgb.shape[1] < MIN_SIDE:
        return {"found": False, "generator": None, "agreement": None, "note": w["watermark_too_small"]}
    read = block_bits(rgb)
    best = {"found": False, "generator": None, "agreement": None, "note": None}
    for name, message in MESSAGES.items():
        got = decode(rgb, len(message), read)
        if got is None:
            continue
        matched = int(np.sum(got == message))
        agreement = matched / len(message)
        if best["agreement"] is None or agreement > best["agreement"]:
            best.update(agreement=agreement)
        if agreement >= AGREEMENT:
            note = w["watermark"].format(generator=name, matched=matched, bits=len(message))
            return {"found": True, "generator": name, "agreement": agreement, "note": note}
    return best
