"""Files with provenance, written as generators and cameras write them, and Python's reading
of each (models/provenance.py), for the extension's tests of its JS twin.

    python tests/extension/provenance_fixtures.py OUT    # OUT/*.jpg|png + OUT/expect.json

expect.json: {file: {tier, ai, statement, c2pa, signer, claim_generator, validation_codes}}, and
for a PNG its decoded pixels (OUT/pixels/NAME.rgba, RGBA rows, with `size`: [width, height]),
which the extension reads for what only pixels show (NovelAI's hidden metadata, the Stable
Diffusion watermark), and Python's watermark search (`watermark`).
Both sides trust only the official C2PA trust list here, so the test CA's credentials are
declared (signed by a signer on no trust list) on both.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.server import files  # noqa: E402
from tests.server.c2pa_signing import CAPTURE, TRAINED, sign  # noqa: E402
from tests.synthetic import encode, face_image  # noqa: E402


def make() -> dict[str, bytes]:
    comment = b"UNICODE\x00" + "a face\nSteps: 30, Sampler: DPM++ 2M, CFG scale: 7".encode("utf-16-be")
    return {
        "xmp_ai.jpg": files.jpeg_with_xmp("trainedAlgorithmicMedia", seed=1),
        "xmp_capture.jpg": files.jpeg_with_xmp("digitalCapture", seed=2),
        "a1111.png": files.png_with_text({"parameters": "a portrait, Steps: 20, Sampler: Euler a, Seed: 1"}, seed=3),
        "comfyui.png": files.png_with_text({"prompt": '{"3": {"class_type": "KSampler"}}', "workflow": "{}"}, seed=4, compressed=True),
        "novelai.png": files.png_with_text({"Software": "NovelAI", "Comment": '{"steps": 28}'}, seed=5),
        "title.png": files.png_with_text({"Title": "holiday", "Author": "me"}, seed=6),
        "midjourney.jpg": files.jpeg_with_exif("Midjourney v6", seed=7),
        "a1111_comment.jpg": files.jpeg_with_exif(user_comment=comment, seed=8),
        "gimp.jpg": files.jpeg_with_exif("GIMP 2.10", seed=9),
        "plain.jpg": encode(face_image("real", 200, 10)),
        "text_bomb.png": files.png_text_bomb(chunks=100, seed=11),
        "ztxt_bomb.png": files.png_with_ztxt_bomb(size=8 * 1024 * 1024),
        "c2pa_ai.jpg": sign(encode(face_image("real", 200, 12)), "image/jpeg", TRAINED, generator="Test Diffusion"),
        "c2pa_camera.jpg": sign(encode(face_image("real", 200, 13)), "image/jpeg", CAPTURE, generator="Test Camera"),
        # NovelAI's hidden metadata in the alpha channel: only decoded pixels show it (offscreen.js).
        "novelai_stealth.png": files.novelai_stealth_png({"Description": "a portrait", "steps": 28}, seed=14),
        "novelai_stealth_plain.png": files.novelai_stealth_png({"steps": 28}, seed=15, compressed=False),
        "chart_a1111.png": encode(files.chart(), "PNG", pnginfo=_info({"parameters": "a chart, Steps: 20, Sampler: Euler a"})),
        # The Stable Diffusion watermark: only decoded pixels show it, and JPEG destroys it.
        "sd_watermark.png": encode(_marked("Stable Diffusion v1/v2", 16), "PNG"),
        "sdxl_watermark.png": encode(_marked("Stable Diffusion XL", 17), "PNG"),
        "sdxl_watermark.jpg": encode(_marked("Stable Diffusion XL", 17), "JPEG"),
        "sd_watermark_large.png": encode(_marked("Stable Diffusion v1/v2", 18, size=1200), "PNG"),  # read in its middle
    }


def _marked(generator: str, seed: int, size: int = 256):
    from models.watermark import MESSAGES

    return files.sd_watermark(files.textured(size, seed), MESSAGES[generator])


def _info(chunks):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for k, v in chunks.items():
        info.add_text(k, v)
    return info


def _write_pixels(data: bytes, path: Path) -> list[int]:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        rgba = img.convert("RGBA")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(rgba.tobytes())
    return list(rgba.size)


def _pixels(data: bytes):
    from models.preprocessing import ImageError, load_image

    try:
        return load_image(data)
    except ImageError:  # the bombs: the server refuses them before provenance
        return None


def write(out: Path) -> dict:
    from models.provenance import inspect
    from server.uploads import sniff

    out.mkdir(parents=True, exist_ok=True)
    expect = {}
    for name, data in make().items():
        (out / name).write_bytes(data)
        p = inspect(data, sniff(data), pixels=_pixels(data))  # as the server reads an upload
        expect[name] = {"tier": p["tier"], "ai": p["ai"], "statement": p["statement"], "c2pa": p["c2pa"]["present"],
                        "signer": p["signer"], "claim_generator": p["claim_generator"], "validation_codes": p["validation_codes"],
                        "watermark": p["metadata"].get("watermark")}
        if name.endswith(".png") and "bomb" not in name:  # Pillow refuses the bombs' text, by design
            expect[name]["size"] = _write_pixels(data, out / "pixels" / f"{name}.rgba")
    (out / "expect.json").write_text(json.dumps(expect, indent=1))
    return expect


if __name__ == "__main__":
    print(json.dumps(write(Path(sys.argv[1]))))
