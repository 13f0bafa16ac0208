"""Test files: the metadata that image generators and cameras write, real faces, scenes
and pictures without a face."""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from tests.synthetic import chart, encode, face_image

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"


def face(size: int = 200, seed: int = 0) -> np.ndarray:
    return face_image("real", size, seed)


def jpeg_with_exif(software: str | None = None, user_comment: bytes | None = None, seed: int = 0) -> bytes:
    exif = Image.Exif()
    if software:
        exif[0x0131] = software
    if user_comment is not None:
        exif.get_ifd(0x8769)[0x9286] = user_comment
    buf = io.BytesIO()
    Image.fromarray(face(200, seed)).save(buf, "JPEG", quality=90, exif=exif.tobytes())
    return buf.getvalue()


def png_with_text(chunks: dict[str, str], seed: int = 0, compressed: bool = False) -> bytes:
    info = PngImagePlugin.PngInfo()
    for k, v in chunks.items():
        if compressed:
            info.add_itxt(k, v, zip=True)
        else:
            info.add_text(k, v)
    buf = io.BytesIO()
    Image.fromarray(face(200, seed)).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def xmp_packet(source_type: str) -> bytes:
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
        f'Iptc4xmpExt:DigitalSourceType="{IPTC}{source_type}"/>'
        '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode()


def jpeg_with_xmp(source_type: str, seed: int = 0) -> bytes:
    """A JPEG with an XMP APP1 segment naming an IPTC digital source type."""
    jpeg = encode(face(200, seed))
    payload = b"http://ns.adobe.com/xap/1.0/\x00" + xmp_packet(source_type)
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + segment + jpeg[2:]


def png_chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def itxt(key: str, text: bytes, compressed: bool = True) -> bytes:
    """An iTXt chunk; `text` goes in as it is when not compressed (garbage included)."""
    payload = zlib.compress(text, 9) if compressed else text
    return png_chunk(b"iTXt", key.encode() + b"\x00" + bytes([int(compressed), 0]) + b"\x00\x00" + payload)


def png_with_chunks(chunks: list[bytes], seed: int = 1) -> bytes:
    """A face PNG with `chunks` placed just before IEND (where some generators write text)."""
    png = encode(face(200, seed), "PNG")
    return png[:-12] + b"".join(chunks) + png[-12:]


def png_with_ztxt_bomb(key: str = "parameters", size: int = 64 * 1024 * 1024) -> bytes:
    """A PNG whose compressed text chunk inflates to `size` bytes."""
    png = encode(face(200, 1), "PNG")
    chunk = png_chunk(b"zTXt", key.encode() + b"\x00\x00" + zlib.compress(b"A" * size, 9))
    return png[:33] + chunk + png[33:]  # after the 8-byte signature and the 25-byte IHDR chunk


def png_text_bomb(chunks: int = 300, seed: int = 1) -> bytes:
    """The text-chunk bomb of issue 18: a zero-length chunk of an invalid type (Pillow stops
    reading there, so its own text limit never sees what follows), then `chunks` iTXt chunks
    of about 1 KB each that each inflate to 1 MiB, under keys of their own."""
    mib = b"\x00" * (1 << 20)
    return png_with_chunks([png_chunk(b"\x00\x00\x00\x00", b"")] + [itxt(f"parameters{i}", mib) for i in range(chunks)], seed)


def animated_gif(seed: int = 0) -> bytes:
    frames = [Image.fromarray(face(200, seed + i)) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


# --- faces: real photos, scenes, and pictures without a face ------------------------------
FACES_V1 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "faces-v1"
# FFHQ photos (256 px) that the full-range finder finds alone and pasted into a scene.
FFHQ = ["stylegan1-ffhq/real/0012b64c8838c4d0.jpg", "stylegan1-ffhq/real/00ac632bf0565874.jpg",
        "stylegan1-ffhq/real/0273971a76f64b47.jpg"]


def faces_v1(names=FFHQ) -> list[np.ndarray]:
    """RGB arrays of faces-v1 images (CI has the data set; elsewhere the test is skipped)."""
    import pytest

    paths = [FACES_V1 / n for n in names]
    if not all(p.exists() for p in paths):
        pytest.skip(f"faces-v1 is not at {FACES_V1}")
    return [np.asarray(Image.open(p).convert("RGB")) for p in paths]


def scene(faces: list[np.ndarray], size=(1200, 800)) -> tuple[np.ndarray, list[tuple]]:
    """The faces pasted side by side on a grey ramp; returns the picture and where each
    went (x0, y0, x1, y1)."""
    w, h = size
    out = np.tile(np.linspace(60, 200, w).astype(np.uint8)[None, :, None], (h, 1, 3))
    places = []
    step = w // len(faces)
    for i, f in enumerate(faces):
        fh, fw = f.shape[:2]
        x, y = i * step + (step - fw) // 2, (h - fh) // 2
        out[y:y + fh, x:x + fw] = f
        places.append((x, y, x + fw, y + fh))
    return out, places


def chart_video(path: Path, seconds: float = 1.0, fps: int = 10) -> Path:
    """A video of a chart whose bars move: no face in any frame."""
    import av

    base = chart((256, 256))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width = stream.height = 256
        stream.pix_fmt = "yuv420p"
        for i in range(int(seconds * fps)):
            frame = np.roll(base, 3 * i, axis=1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def sd_watermark(rgb: np.ndarray, bits) -> np.ndarray:
    """`rgb` marked as Stable Diffusion's scripts mark their output: invisible-watermark 0.2.0's
    `dwtDct` encoder (EmbedMaxDct.encode: OpenCV's YUV, U channel only, pywt's Haar cA band,
    4x4 blocks, step 36, stored back into 8 bits by truncation), with NumPy's Haar for pywt's."""
    import cv2

    yuv = cv2.cvtColor(np.ascontiguousarray(rgb[..., ::-1]), cv2.COLOR_BGR2YUV)
    h, w = (yuv.shape[0] // 4) * 4, (yuv.shape[1] // 4) * 4
    u = yuv[:h, :w, 1].astype(np.float64)
    a, b, c, d = u[0::2, 0::2], u[0::2, 1::2], u[1::2, 0::2], u[1::2, 1::2]
    ca, d1, d2, d3 = (a + b + c + d) / 2, (a - b + c - d) / 2, (a + b - c - d) / 2, (a - b - c + d) / 2
    num = 0
    for i in range(ca.shape[0] // 4):
        for j in range(ca.shape[1] // 4):
            block = ca[4 * i:4 * i + 4, 4 * j:4 * j + 4]  # a view: changed in place, as imwatermark does
            flat = block.flatten()
            pos = int(np.argmax(np.abs(flat[1:]))) + 1
            val, bit = flat[pos], bits[num % len(bits)]
            block[pos // 4, pos % 4] = np.sign(val or 1.0) * (abs(val) // 36 + 0.25 + 0.5 * bit) * 36
            num += 1
    out = np.empty_like(u)
    out[0::2, 0::2], out[0::2, 1::2] = (ca + d1 + d2 + d3) / 2, (ca - d1 + d2 - d3) / 2
    out[1::2, 0::2], out[1::2, 1::2] = (ca + d1 - d2 - d3) / 2, (ca - d1 - d2 + d3) / 2
    yuv[:h, :w, 1] = np.clip(out, 0, 255).astype(np.uint8)
    return cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR)[..., ::-1].copy()


def textured(size: int = 256, seed: int = 0) -> np.ndarray:
    """A smooth random texture, like a photo's, away from black and white (where the
    watermark's steps would clip)."""
    import cv2

    rng = np.random.default_rng(seed)
    return np.clip(cv2.GaussianBlur(rng.normal(128, 40, (size, size, 3)), (0, 0), 2), 30, 225).astype(np.uint8)


def novelai_stealth_png(meta: dict, seed: int = 0, compressed: bool = True) -> bytes:
    """A face PNG with NovelAI's "stealth" metadata in its alpha channel's lowest bit, written as
    NovelAI writes it: column by column, "stealth_pngcomp" (or "stealth_pnginfo"), the length
    in bits as 32 bits, then the gzipped (or plain) JSON."""
    import gzip
    import json

    body = json.dumps(meta).encode()
    body = gzip.compress(body) if compressed else body
    magic = b"stealth_pngcomp" if compressed else b"stealth_pnginfo"
    payload = magic + (8 * len(body)).to_bytes(4, "big") + body
    bits = np.unpackbits(np.frombuffer(payload, np.uint8))
    rgb = face(200, seed)
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    column_major = alpha.T.copy().reshape(-1)
    column_major[: len(bits)] = (column_major[: len(bits)] & 0xFE) | bits
    alpha = column_major.reshape(alpha.T.shape).T
    buf = io.BytesIO()
    Image.fromarray(np.dstack([rgb, alpha])).save(buf, "PNG")
    return buf.getvalue()
