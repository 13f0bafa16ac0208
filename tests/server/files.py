"""Test files with the metadata that image generators and cameras write."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image, PngImagePlugin

from tests.synthetic import encode, face_image

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


def png_with_ztxt_bomb(key: str = "parameters", size: int = 64 * 1024 * 1024) -> bytes:
    """A PNG whose compressed text chunk inflates to `size` bytes."""
    png = encode(face(200, 1), "PNG")
    body = key.encode() + b"\x00\x00" + zlib.compress(b"A" * size, 9)
    chunk = struct.pack(">I", len(body)) + b"zTXt" + body + struct.pack(">I", zlib.crc32(b"zTXt" + body))
    return png[:33] + chunk + png[33:]  # after the 8-byte signature and the 25-byte IHDR chunk


def animated_gif(seed: int = 0) -> bytes:
    frames = [Image.fromarray(face(200, seed + i)) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()
