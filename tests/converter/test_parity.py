"""Parity between Keras (Pillow decoding) and TensorFlow.js under Node (the extension's own
preprocess.js, detector.js and verdict.js), on synthetic images and on the shipped model."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.converter.helpers import REPO, node_or_skip, probe

pytestmark = pytest.mark.slow

SHIPPED = REPO / "extension" / "model"
# The extension's model budget: tiny ships with float16 1x1-convolution kernels (mixed,
# 512 KB with metadata.json); unquantized it would be 894 KB.
SHIPPED_MAX_BYTES = 600 * 1024

# (width, height, format): below the tiny model's input side and well above twice it (so that
# the box-average step runs with k from 2 to 5), square, landscape and portrait, odd sides.
SHAPES = [(96, 96, "PNG"), (128, 128, "JPEG"), (300, 200, "JPEG"), (257, 411, "PNG"), (640, 360, "JPEG"),
          (400, 400, "PNG"), (720, 1000, "JPEG"), (333, 900, "PNG"), (1100, 800, "JPEG")]


@pytest.fixture(scope="module")
def synthetic_images(tmp_path_factory):
    from PIL import Image

    from tests.synthetic import encode, face_image

    folder = tmp_path_factory.mktemp("parity_images")
    paths = []
    for i, (w, h, fmt) in enumerate(SHAPES):
        label = ("real", "fake")[i % 2]
        img = np.asarray(Image.fromarray(face_image(label, max(w, h), seed=i)).resize((w, h), Image.BILINEAR))
        if label == "fake":  # keep the fake trace at full resolution, after the resize
            img = np.clip(img.astype(int) + 18 * ((np.indices((h, w)).sum(0) % 2) * 2 - 1)[..., None], 0, 255).astype(np.uint8)
        path = folder / f"{i:02d}_{label}_{w}x{h}.{'jpg' if fmt == 'JPEG' else 'png'}"
        path.write_bytes(encode(img, fmt))
        paths.append(path)
    return paths


@pytest.mark.parametrize("quantization", ["none", "mixed", "float16"])
def test_parity_holds_for_none_mixed_and_float16(converted, tiny_detector, synthetic_images, quantization):
    from converter.parity import check_parity

    size = tiny_detector.spec.input_size
    assert any(min(w, h) >= 2 * size for w, h, _ in SHAPES), "add an image over twice the input size"
    folder = converted[quantization][0]
    report = check_parity(folder, tiny_detector, synthetic_images)
    assert report.problems == [] and report.skipped == []
    assert len(report.rows) == len(synthetic_images)
    assert report.max_abs_diff <= 0.01, report.format()
    assert report.verdicts_differ == [], report.format()
    assert report.passed and "PASS" in report.format()
    # The comparison means something: the model's scores differ from image to image.
    p = [r["p_keras"] for r in report.rows]
    assert max(p) - min(p) > 0.01, p


def test_uint8_figures_are_reported(converted, tiny_detector, synthetic_images):
    from converter.parity import check_parity

    report = check_parity(converted["uint8"][0], tiny_detector, synthetic_images)
    assert not report.enforced
    assert len(report.rows) == len(synthetic_images) and math.isfinite(report.max_abs_diff)
    text = report.format()
    assert "reported only" in text and "largest |p_fake difference|" in text
    print(text)  # the figures, in the test log


def test_js_preprocessing_equals_python(synthetic_images, tmp_path):
    """preprocess.js (with the Node decoders) gives the same model input as
    models.preprocessing (Pillow + TensorFlow), to float rounding (0.01 of 255 levels), at
    the contract's sizes."""
    node_or_skip()
    from converter.parity import fixed_images
    from models.preprocessing import input_spec, preprocess_file

    images = synthetic_images + fixed_images(tmp_path / "fixed")  # adds EXIF rotation, grey, palette, RGBA
    for size in sorted({input_spec("tiny").input_size, input_spec("ensemble").input_size, 128}):
        out = tmp_path / f"inputs{size}.f32"
        probe("inputs", size, out, *images)
        js = np.fromfile(out, np.float32).reshape(len(images), size, size, 3)
        for path, x in zip(images, js):
            py = preprocess_file(path, size)
            assert np.abs(py - x).max() < 0.01, (path.name, size, float(np.abs(py - x).max()))


def test_js_verdicts_equal_python():
    node_or_skip()
    from models.calibration import Calibration

    cals = [Calibration(1.0, 0.5, 0.5), Calibration(1.7, 0.81, 0.23), Calibration(0.6, 0.97, 0.02), Calibration(2.0, 1.000001, -0.000001)]
    ps = [0.0, 1e-9, 0.01, 0.2, 0.3999, 0.5, 0.61, 0.8, 0.95, 0.999999, 1.0]
    cases = [{"p": p, "calibration": c.to_dict()} for c in cals for p in ps]
    js = probe("verdicts", stdin=cases)
    for case, got in zip(cases, js):
        want = Calibration.from_dict(case["calibration"]).verdict(case["p"])
        assert got["verdict"] == want["verdict"], (case, got, want)
        for key in ("confidence", "p_fake", "p_fake_raw"):
            assert got[key] == pytest.approx(want[key], abs=1e-4), (case, key)


def test_detector_js_rejects_metadata_that_does_not_fit(converted):
    folder = converted["float16"][0]
    meta = json.loads((folder / "metadata.json").read_text())
    assert probe("load", folder, stdin=meta) == {"loaded": True}

    other = meta["preprocessing"]["input_size"] + 32
    wrong_size = {**meta, "preprocessing": {**meta["preprocessing"], "input_size": other}}
    assert f"metadata.json says {other}x{other}x3" in probe("load", folder, stdin=wrong_size)["error"]
    other_resize = {**meta, "preprocessing": {**meta["preprocessing"], "resize": "lanczos"}}
    assert "preprocess.js implements" in probe("load", folder, stdin=other_resize)["error"]
    no_cal = {**meta, "calibration": {"temperature": "hot"}}
    assert "calibration temperature must be a number" in probe("load", folder, stdin=no_cal)["error"]
    assert "not an Unmask detector metadata.json" in probe("load", folder, stdin={"format": "x"})["error"]


def test_shared_modules_bundle_for_the_browser(tmp_path):
    """detector.js and its imports bundle with esbuild for the browser: no Node-only imports."""
    node_or_skip()
    esbuild = REPO / "node_modules" / ".bin" / "esbuild"
    out = tmp_path / "bundle.js"
    proc = subprocess.run([str(esbuild), str(REPO / "extension/src/detector.js"), "--bundle", "--format=esm",
                           "--platform=browser", f"--outfile={out}", "--log-level=warning"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 100_000  # TF.js core and converter are inside


def test_parity_command_line(converted, tiny_detector, synthetic_images, tmp_path):
    node_or_skip()
    images = tmp_path / "images"
    images.mkdir()
    for p in synthetic_images[:4]:
        shutil.copy(p, images / p.name)
    (images / "notes.jpg").write_bytes(b"not an image")
    folder = converted["float16"][0]

    def parity(*args):
        return subprocess.run([sys.executable, "-m", "converter.parity", *map(str, args)], cwd=REPO, capture_output=True,
                              text=True, timeout=600)

    ok = parity(folder, "--keras", tiny_detector.path, "--images", images, "--json", tmp_path / "r.json")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "result: PASS" in ok.stdout and "notes.jpg" in ok.stdout  # the unreadable file is listed as skipped
    assert json.loads((tmp_path / "r.json").read_text())["compared"] == 4

    tampered = tmp_path / "tampered"
    shutil.copytree(folder, tampered)
    shard = next(tampered.glob("*.bin"))
    shard.write_bytes(shard.read_bytes()[:-8] + b"\0" * 8)
    bad = parity(tampered, "--keras", tiny_detector.path, "--images", images)
    assert bad.returncode == 1 and "changed since conversion" in bad.stdout

    missing = parity(tmp_path / "nothing", "--keras", tiny_detector.path)
    assert missing.returncode == 2 and "no metadata.json" in missing.stderr


def test_shipped_model_keeps_parity():
    """extension/model/, converted by `unmask convert tiny --out extension/model ...`, against
    the bundled Keras tiny detector, on the fixed image set."""
    if not (SHIPPED / "metadata.json").exists():
        pytest.skip("extension/model/ is not shipped yet: make it with "
                    "`unmask convert tiny --out extension/model --quantize auto --data ../shared/data/faces-v1`")
    node_or_skip()
    from converter import metadata
    from converter.parity import check_parity

    meta = metadata.read(SHIPPED)
    assert metadata.verify_files(SHIPPED, meta) == []
    # The classifier's budget; the face model in face/ has its own (test_faces_parity.py).
    total = sum(p.stat().st_size for p in SHIPPED.glob("*") if p.is_file())
    assert total <= SHIPPED_MAX_BYTES, f"extension/model/ is {total / 1024:.0f} KB, over the {SHIPPED_MAX_BYTES // 1024} KB budget"
    accuracy = meta["conversion"].get("accuracy")
    assert accuracy, "the shipped model was converted without --data: its quantization's accuracy was never measured"
    q = meta["model"]["quantization"]
    assert abs(accuracy[q] - accuracy["keras"]) <= 0.01
    report = check_parity(SHIPPED, meta["name"])
    print(report.format())
    assert report.passed, report.format()
