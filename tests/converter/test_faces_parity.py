"""Faces first: extension/src/faces.js (TF.js under Node, wasm backend, the shipped face model)
finds the faces models/faces.py finds, on fixed images, and each of its steps equals Python's.

The fixed images (converter.faces.fixed_images) paste real faces from faces-v1 into scenes
from scikit-image's data: no face, one tight crop (found by the second view), several faces,
a face cut by the border, a face under min_face_side, a 3000x2000 photo and a small face in a large picture (found
tile by tile)."""
from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from tests.converter.helpers import REPO, node_or_skip, probe

pytestmark = pytest.mark.slow

SHIPPED = REPO / "extension" / "model"
FACE_MAX_BYTES = 1200 * 1024  # BlazeFace full range, float16: 1,161 KB


@pytest.fixture(scope="module")
def shipped_meta():
    from converter import metadata

    if not (SHIPPED / "metadata.json").exists():
        pytest.skip("extension/model/ is not shipped yet")
    meta = metadata.read(SHIPPED)
    assert "faces" in meta, "extension/model/metadata.json has no faces section: run `python -m converter.faces --out extension/model`"
    return meta


@pytest.fixture(scope="module")
def finder():
    from models.faces import FaceFinder

    return FaceFinder()


@pytest.fixture(scope="module")
def fixed(tmp_path_factory):
    from converter.faces import FACES_V1, fixed_images

    if not FACES_V1.is_dir():
        pytest.skip(f"needs the faces-v1 images at {FACES_V1}")
    return {p.name: p for p in fixed_images(tmp_path_factory.mktemp("face_images"))}


@pytest.fixture(scope="module")
def python(finder, fixed):
    from converter.faces import python_faces

    return {k.split("/")[-1]: v for k, v in python_faces(list(fixed.values()), finder).items()}


@pytest.fixture(scope="module")
def tfjs(shipped_meta, fixed):
    node_or_skip()
    from converter.faces import tfjs_faces

    rows, runtime = tfjs_faces(SHIPPED, list(fixed.values()))
    assert runtime["backend"] == "wasm"
    return {k.split("/")[-1]: v for k, v in rows.items()}


def test_the_fixed_images_cover_each_case(python, finder, fixed):
    from models.preprocessing import load_image

    counts = {name: (len(r["faces"]), r["too_small"]) for name, r in python.items()}
    assert counts == {
        "coffee.jpg": (0, 0), "noise.png": (0, 0), "chart.png": (0, 0),
        "astronaut.jpg": (1, 0), "camera_grey.png": (1, 0), "tight_crop.jpg": (1, 0),
        "group_1200x800.jpg": (3, 0), "cut_by_border.png": (1, 0), "tiny_face.png": (0, 1), "large_3000x2000.jpg": (1, 0),
        "small_in_large.jpg": (1, 0),
    }
    # The tight crop is found by the second view only; the border cuts its face's box.
    assert finder._candidates([load_image(fixed["tight_crop.jpg"])], 0.0) == [[]]
    # The small face in a large picture is found tile by tile only (issue 20, item 3).
    small = load_image(fixed["small_in_large.jpg"])
    assert finder._candidates([small], 0.0) == [[]] and finder._candidates([small], finder.contract.tight_crop_pad) == [[]]
    assert len(finder._tiled(small)) == 1
    assert python["cut_by_border.png"]["faces"][0]["box"][0] == 0.0
    assert (python["large_3000x2000.jpg"]["width"], python["large_3000x2000.jpg"]["height"]) == (3000, 2000)


def test_tfjs_finds_the_faces_python_finds(python, tfjs):
    from converter.faces import BOX_TOLERANCE, compare

    result = compare(python, tfjs)
    for r in result["rows"]:
        print(f"{r['path']:<22} faces {r['python']}/{r['tfjs']}  box {100 * r['box_diff']:.3f}% ({r['box_diff_px']:.1f} px)  "
              f"crop {100 * r['crop_diff']:.3f}%  score {r['score_diff']:.4f}  crop mean {r['crop_mean_diff']:.2f}  {r.get('ms', '?')} ms")
    assert not result["count_differs"], result["count_differs"]
    assert result["max_box_diff"] <= BOX_TOLERANCE and result["max_crop_diff"] <= BOX_TOLERANCE
    assert result["max_score_diff"] <= 0.01
    assert result["max_crop_mean_diff"] <= 2.0  # cropPixels cuts the same pixels (both decoders are libjpeg-turbo)
    assert result["passed"]
    for name in python:  # the order and the counts exactly as Python gives them
        assert [len(python[name]["faces"]), python[name]["too_small"], python[name]["over_limit"]] == \
               [len(tfjs[name]["faces"]), tfjs[name]["too_small"], tfjs[name]["over_limit"]]
        assert all(sorted(f) == ["box", "crop", "crop_mean", "detector_score", "keypoints"] for f in tfjs[name]["faces"])


def test_shipped_metadata_carries_the_faces_contract_and_files(shipped_meta, tmp_path):
    from converter import metadata
    from models.preprocessing import contract

    faces = shipped_meta["faces"]
    for key, value in contract()["faces"].items():
        assert faces[key] == value, f"metadata.faces.{key} differs from models/preprocessing.json: run `python -m converter.faces --out extension/model`"
    assert faces["contract_version"] == contract()["version"]
    assert faces["model"]["file"] == "face/model.json" and set(faces["model"]["outputs"]) == {"boxes", "scores"}
    assert sorted(e["path"] for e in faces["files"]) == sorted(f"face/{p.name}" for p in (SHIPPED / "face").iterdir())
    assert metadata.verify_files(SHIPPED, shipped_meta) == []
    size = sum(e["bytes"] for e in faces["files"])
    assert size <= FACE_MAX_BYTES, f"the face model is {size / 1024:.0f} KB"
    measured = faces["conversion"]["measured"]
    assert measured[faces["model"]["quantization"]]["passed"] is True
    if faces["model"]["quantization"] == "none":
        assert measured["float16"]["passed"] is False, "float16 passed: it should have been chosen"

    # verify_files watches the face model too.
    copy = tmp_path / "model"
    shutil.copytree(SHIPPED, copy)
    shard = copy / "face" / "group1-shard1of1.bin"
    shard.write_bytes(shard.read_bytes()[:-4] + b"\0\0\0\0")
    assert metadata.verify_files(copy, shipped_meta) == ["face/group1-shard1of1.bin has changed since conversion (sha256 differs)"]
    unlisted = json.loads(json.dumps(shipped_meta))
    unlisted["faces"]["files"] = [e for e in unlisted["faces"]["files"] if e["path"] != "face/group1-shard1of1.bin"]
    assert "face/group1-shard1of1.bin is not listed in metadata.json" in metadata.verify_files(copy, unlisted)


def test_each_step_of_faces_js_equals_python():
    """Geometry, crop, decode, weighted NMS and select, on the same numbers (no model)."""
    node_or_skip()
    from models import faces as F
    from models.preprocessing import contract

    c = F.face_contract()
    rng = np.random.default_rng(3)
    sizes = [(256, 256), (2000, 3000), (800, 1200), (611, 173), (48, 49), (5000, 37)]
    geometry = [(h, w, pad) for h, w in sizes for pad in (0.0, c.tight_crop_pad)]
    crops = []
    for _ in range(40):
        x0, y0 = rng.uniform(-50, 700, 2)
        bw, bh = rng.uniform(1, 400, 2)
        crops.append(([x0, y0, x0 + bw, y0 + bh], int(rng.integers(60, 800)), int(rng.integers(60, 800))))
    raw = []
    for h, w, pad in geometry[:6]:
        scores = rng.normal(-4, 3, (2304, 1)).astype(np.float32)
        boxes = np.concatenate([rng.normal(0, 4, (2304, 2)), rng.uniform(8, 90, (2304, 2)), rng.normal(0, 20, (2304, 12))], 1).astype(np.float32)
        _, _, geo = F.letterbox_geometry(h, w, c.input_size, pad)
        raw.append((boxes, scores, geo, h, w))
    metadata = {"faces": {**contract()["faces"], "model": {"outputs": {"boxes": "b", "scores": "s"}}}}
    py_decoded = [F.decode(b, s, geo, c) for b, s, geo, _, _ in raw]
    py_nms = [F.weighted_nms(*d, c.nms_iou) for d in py_decoded]
    cands = [[{"score": float(s), "box": b.tolist(), "keypoints": k.tolist()} for s, b, k in zip(*d)] for d in py_decoded]
    merged = [[{"score": s, "box": b.tolist(), "keypoints": k.tolist()} for s, b, k in m] for m in py_nms]
    js = probe("faces", stdin={
        "metadata": metadata, "geometry": geometry, "crops": crops,
        "raw": [{"boxes": b.ravel().tolist(), "scores": s.ravel().tolist(),
                 "geo": {"offsetX": g.offset_x, "offsetY": g.offset_y, "scaleX": g.scale_x, "scaleY": g.scale_y}} for b, s, g, _, _ in raw],
        "nms": cands, "selects": [{"merged": m, "h": h, "w": w} for m, (_, _, _, h, w) in zip(merged, raw)],
    })

    for (h, w, pad), g in zip(geometry, js["geometry"]):
        (rh, rw), k, geo = F.letterbox_geometry(h, w, c.input_size, pad)
        assert (g["rh"], g["rw"], g["k"], g["offsetX"], g["offsetY"], g["scaleX"], g["scaleY"]) == \
               (rh, rw, k, geo.offset_x, geo.offset_y, geo.scale_x, geo.scale_y), (h, w, pad)
    assert [tuple(x) for x in js["crops"]] == [F.crop_square(b, h, w, c.crop_margin) for b, h, w in crops]
    assert sum(len(d[0]) for d in py_decoded) > 50, "the random outputs should give many candidates"
    for (scores, boxes, kps), got in zip(py_decoded, js["decoded"]):
        assert len(got) == len(scores)
        np.testing.assert_allclose([g["score"] for g in got], scores, rtol=1e-12)
        np.testing.assert_allclose([g["box"] for g in got], boxes.reshape(-1, 4), rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose([g["keypoints"] for g in got], kps, rtol=1e-12, atol=1e-9)
    assert sum(len(m) for m in py_nms) < sum(len(d[0]) for d in py_decoded), "some boxes should merge"
    for want, got in zip(py_nms, js["nms"]):
        assert len(got) == len(want)
        np.testing.assert_allclose([g["box"] for g in got], [b for _, b, _ in want], rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose([g["keypoints"] for g in got], [k for _, _, k in want], rtol=1e-12, atol=1e-9)
        assert [g["score"] for g in got] == [s for s, _, _ in want]
    for m, (_, _, _, h, w), got in zip(py_nms, raw, js["selected"]):
        found = F.select(m, h, w, c)
        assert got["faces"] == [f.as_dict() for f in found.faces]
        assert (got["too_small"], got["over_limit"], got["width"], got["height"]) == (found.too_small, found.over_limit, w, h)


def test_letterbox_canvas_equals_python(tmp_path):
    """The same ops: box average in plain JS, tf.image.resizeBilinear, paste on black. Only
    float32 rounding differs: at most 0.004 of 255 seen, on noise (the steepest gradients)."""
    node_or_skip()
    from PIL import Image

    from models.faces import face_contract, letterbox

    size = face_contract().input_size
    rng = np.random.default_rng(5)
    images = []
    for i, (w, h) in enumerate([(256, 256), (1500, 1000), (333, 901), (100, 60), (2100, 400)]):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        path = tmp_path / f"{i}.png"
        Image.fromarray(img).save(path)
        images.append((path, img))
    for pad in (0.0, face_contract().tight_crop_pad):
        out = tmp_path / f"canvas_{pad}.f32"
        probe("letterbox", size, pad, out, *[p for p, _ in images])
        js = np.fromfile(out, np.float32).reshape(len(images), size, size, 3)
        for (path, img), got in zip(images, js):
            want, _ = letterbox(img, size, pad)
            assert np.abs(got - want).max() <= 0.01, (path.name, pad, np.abs(got - want).max())


def test_node_unit_tests_of_faces_js():
    node_or_skip()
    r = subprocess.run(["node", "--test", "tests/extension/faces.unit.test.mjs"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]


def test_update_writes_only_the_face_model_and_its_section(converted, tmp_path):
    """python -m converter.faces on a conversion: face/ and metadata.faces, nothing else changed."""
    from converter import faces, metadata

    out = tmp_path / "model"
    shutil.copytree(converted["float16"][0], out)
    before = metadata.read(out)
    assert "faces" not in before and not (out / "face").exists()
    section = faces.update(out, js_checks=False, log=lambda _: None)
    after = metadata.read(out)
    assert {k: v for k, v in after.items() if k != "faces"} == before
    assert after["faces"] == section and section["model"]["quantization"] == faces.UNMEASURED_QUANTIZATION
    assert section["conversion"]["measured"] == "not checked (--skip-js-checks)"
    assert metadata.verify_files(out, after) == []
