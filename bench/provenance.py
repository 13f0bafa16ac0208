"""Provenance in the browser: `python -m bench.run --only provenance`.

Runs bench/provenance_bench.mjs: the extension's provenance reader (extension/src/provenance.js,
plain JS, and for credentials c2pareader.js: c2pa-rs in wasm, reading and validating them
against the bundled trust list) in a headless Chromium page, per picture, on pictures without
Content Credentials (a 200 px face JPEG, a 1200x800 photo-like JPEG, an A1111 PNG) and with
them (the same two JPEGs signed by tests/server/c2pa_signing.py). Budgets (issue 19), each
recorded as met or not: at most 5 ms at p95 without credentials, at most 150 ms at p95 with.
The first read with credentials, which starts the wasm, is kept apart. Then what only decoded
pixels show, which the offscreen document reads in every picture that is not a JPEG (the
Stable Diffusion watermark, NovelAI's alpha-channel metadata), per picture size: at most
10 ms at p95, a tenth of the right-click budget. Also the built extension's size (files,
bytes, the Web Store zip).
"""
from __future__ import annotations

from pathlib import Path

from bench.common import run_node_bench, say, summary

SECTION = "provenance"
WITHOUT_BUDGET_MS = 5
WITH_BUDGET_MS = 150
PIXELS_BUDGET_MS = 10
PIXEL_SIZES = [[512, 512], [1024, 1024], [4000, 3000]]


def _pictures(folder: Path) -> list[dict]:
    import numpy as np
    import cv2

    from tests.server import files
    from tests.server.c2pa_signing import TRAINED, sign
    from tests.synthetic import encode, face_image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    photo = np.clip(cv2.GaussianBlur(rng.normal(128, 50, (800, 1200, 3)), (0, 0), 1.5), 0, 255).astype(np.uint8)
    made = {
        "face 200 px JPEG": (encode(face_image("real", 200, 1)), False),
        "photo 1200x800 JPEG": (encode(photo), False),
        "A1111 PNG 200 px": (files.png_with_text({"parameters": "a portrait, Steps: 20, Sampler: Euler a"}), False),
    }
    made["face 200 px JPEG, signed"] = (sign(made["face 200 px JPEG"][0], "image/jpeg", TRAINED), True)
    made["photo 1200x800 JPEG, signed"] = (sign(made["photo 1200x800 JPEG"][0], "image/jpeg", TRAINED), True)
    out = []
    for i, (key, (data, manifest)) in enumerate(made.items()):
        path = folder / f"{i}.bin"
        path.write_bytes(data)
        out.append({"key": key, "file": str(path), "manifest": manifest, "bytes": len(data)})
    return out


def measure(smoke: bool, data: Path | None, work: Path) -> dict:
    pictures = _pictures(work / "provenance")
    config = {"pictures": pictures, "runs": 20 if smoke else 200, "out": str(work / "provenance-raw.json"),
              "pixel_sizes": PIXEL_SIZES[:1] if smoke else PIXEL_SIZES}
    say(SECTION, f"running bench/provenance_bench.mjs ({config['runs']} reads of each of {len(pictures)} pictures)")
    raw = run_node_bench("provenance_bench.mjs", config, work)
    rows = {}
    for p in pictures:
        s = summary(raw["ms"][p["key"]], p95=True, digits=3)
        budget = WITH_BUDGET_MS if p["manifest"] else WITHOUT_BUDGET_MS
        rows[p["key"]] = {"bytes": p["bytes"], "manifest": p["manifest"], "ms": s, "budget_ms": budget, "met": s["p95"] <= budget,
                          "tier": raw["tiers"][p["key"]]["tier"], "c2pa_found": raw["tiers"][p["key"]]["c2pa"],
                          "first_ms": round(raw["first_ms"][p["key"]], 1)}
    pixels = {}
    for size, ms in raw["pixel_ms"].items():
        s = summary(ms, p95=True, digits=3)
        pixels[size] = {"ms": s, "budget_ms": PIXELS_BUDGET_MS, "met": s["p95"] <= PIXELS_BUDGET_MS}
    return {"how": "extension/src/provenance.js readProvenance() in a headless Chromium page, per picture, after 3 warm-up reads; "
                   "credentials read and validated by c2pa-rs in wasm (c2pareader.js)",
            "pixels_how": "sdWatermark() and novelaiStealth() on decoded pixels (noise) of each size, in the same page, after 3 warm-up runs",
            "verified_c2pa": True, "pictures": rows, "pixels": pixels, "extension": raw["extension"]}


def markdown(sec: dict) -> list[str]:
    from bench.common import kb, mb, num, rep, table

    lines = [sec["how"] + ".", ""]
    lines += table(["picture", "file", "Content Credentials", "ms median / p95 (min-max, n)", "first read, ms", "budget p95", "met", "tier read"],
                    [[k, kb(r["bytes"]), "yes" if r["manifest"] else "no", rep(r["ms"], 3, p95=True), num(r.get("first_ms")),
                      f"{r['budget_ms']} ms", "yes" if r["met"] else "NO", r["tier"] or "-"] for k, r in sec["pictures"].items()])
    if sec.get("pixels"):
        lines += [sec["pixels_how"] + ".", ""]
        lines += table(["pixels", "ms median / p95 (min-max, n)", "budget p95", "met"],
                       [[k, rep(r["ms"], 3, p95=True), f"{r['budget_ms']} ms", "yes" if r["met"] else "NO"] for k, r in sec["pixels"].items()])
    e = sec["extension"]
    lines += [f"The built extension: {e['files']} files, {mb(e['bytes'])} ({mb(e['model_bytes'])} of it the models); "
              f"the Web Store zip {mb(e['zip_bytes'])}; provenance.js {kb(e['provenance_js_bytes'])} before bundling.", ""]
    return lines
