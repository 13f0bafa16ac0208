"""models/explain.py and `unmask explain`: Grad-CAM (single models and the ensemble), overlay, LIME, feature
maps, and `unmask explain` on good and bad files."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.synthetic import face_image
from models import explain
from training.commands import main


def png_array(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "PNG"
        return np.asarray(im.convert("RGB"))


@pytest.fixture(scope="module")
def wide_image():
    """Not square: the model sees only its centre square."""
    return np.concatenate([face_image("fake", 160, 7), face_image("fake", 160, 8)[:, :80]], axis=1)  # 160 x 240


def test_gradcam_single_model(tiny, wide_image):
    heat = explain.gradcam(tiny, wide_image)
    assert heat.shape == wide_image.shape[:2] and heat.dtype == np.float32
    assert heat.min() >= 0 and heat.max() == pytest.approx(1.0)
    top, left, side = explain.centre_square(wide_image.shape)
    assert (top, left, side) == (0, 40, 160)
    assert not heat[:, :left].any() and not heat[:, left + side :].any()  # outside what the model saw
    real = explain.gradcam(tiny, wide_image, target="real")
    assert not np.allclose(heat, real)  # evidence for the other label is another map


def test_default_layer_is_the_last_map_wide_enough_to_locate(tiny):
    (default,) = explain.default_layers(tiny)
    maps = explain.map_layers(tiny.model)
    widths = [explain.map_width(tiny.model, p.split("/")) for p in maps]
    i = maps.index(default)
    assert widths[i] >= explain.MIN_CAM_SIDE
    assert all(w < explain.MIN_CAM_SIDE for w in widths[i + 1 :])


def test_gradcam_ensemble_combines_members(ensemble, wide_image):
    layers = explain.default_layers(ensemble)
    assert len(layers) == 2 and layers[0].startswith("tuned_cnn/") and layers[1].startswith("pretrained/")
    both = explain.gradcam(ensemble, wide_image)
    singles = [explain.gradcam(ensemble, wide_image, layer_name=name) for name in layers]
    assert both.max() == pytest.approx(1.0)
    for single in singles:
        assert single.max() > 0  # each member's map reaches the ensemble's score
        assert not np.allclose(both, single)  # and the combined map is neither of them alone


def test_layer_names_and_errors(tiny, ensemble, wide_image):
    maps = explain.map_layers(tiny.model)
    assert "rescale" not in maps and not any(m.endswith("/rescale") for m in maps)  # pixels, not features
    a = explain.gradcam(tiny, wide_image, layer_name=maps[len(maps) // 2])
    assert a.shape == wide_image.shape[:2]
    with pytest.raises(ValueError, match="no feature-map layer 'nope'"):
        explain.gradcam(tiny, wide_image, layer_name="nope")
    with pytest.raises(ValueError, match="no feature-map layer 'pool'"):
        explain.gradcam(tiny, wide_image, layer_name="pool")  # pooled to a vector: not a map
    # Inside a member, by path or by a name that only one member has.
    by_path = explain.gradcam(ensemble, wide_image, layer_name="tuned_cnn/block0_relu1")
    assert np.array_equal(by_path, explain.gradcam(ensemble, wide_image, layer_name="block0_relu1"))
    with pytest.raises(ValueError, match="target"):
        explain.gradcam(tiny, wide_image, target="maybe")


def test_overlay_and_png(wide_image):
    heat = np.zeros(wide_image.shape[:2], np.float32)
    cold = explain.overlay(wide_image, heat, outline=False)
    assert np.array_equal(cold, wide_image)  # no heat: the picture unchanged
    heat[50:60, 100:110] = 1.0
    hot = explain.overlay(wide_image, heat)
    assert hot.shape == wide_image.shape and hot.dtype == np.uint8
    assert not np.array_equal(hot[50:60, 100:110], wide_image[50:60, 100:110])
    assert np.array_equal(hot[80:90, 60:70], wide_image[80:90, 60:70])  # cold and off the outline
    assert (hot[80, 40] == 255).all()  # the outline of the analysed square
    assert np.array_equal(png_array(explain.png_bytes(hot)), hot)  # lossless
    with pytest.raises(ValueError, match="does not match"):
        explain.overlay(wide_image, heat[:10])


def test_lime(tiny, wide_image):
    r = explain.lime_explain(tiny, wide_image, num_samples=60, seed=1)
    assert r.heat.shape == wide_image.shape[:2] and 0 <= r.heat.min() and r.heat.max() <= 1
    size = tiny.spec.input_size
    assert r.segments.shape == (size, size) and len(r.weights) == len(np.unique(r.segments))
    positive = any(w > 0 for w in r.weights.values())
    assert r.heat.max() == pytest.approx(1.0 if positive else 0.0)
    again = explain.lime_explain(tiny, wide_image, num_samples=60, seed=1)
    assert np.array_equal(r.heat, again.heat)  # seeded


def test_feature_maps(ensemble, wide_image):
    grid = png_array(explain.feature_maps(ensemble, wide_image, "tuned_cnn/block1_relu1", max_maps=8))
    assert grid.ndim == 3 and grid.shape[0] > 100 and grid.shape[1] > 100
    assert grid.std() > 0


# --- the command ------------------------------------------------------------------------
def test_cli_gradcam_draws_every_face_with_its_own_heat(tiny, tiny_dir, tmp_path, capsys):
    """Two faces side by side: a box and a heatmap each, nothing away from the faces."""
    from models.inference import FaceCheck
    from tests.synthetic import write_image

    picture = np.full((300, 700, 3), 235, np.uint8)
    picture[40:260, 20:240] = face_image("fake", 220, 11)
    picture[40:260, 460:680] = face_image("real", 220, 12)
    path = write_image(tmp_path / "two.png", picture)
    out = tmp_path / "heat.png"
    assert main(["explain", str(path), "--out", str(out), "--model", str(tiny_dir),
                 "--heat", str(tmp_path / "heat.npy")]) == 0
    drawn = png_array(out.read_bytes())
    assert drawn.shape == picture.shape
    heat = np.load(tmp_path / "heat.npy")
    result = FaceCheck(tiny).check_image(picture)
    assert len(result["faces"]) == 2
    inside = np.zeros(heat.shape, bool)
    for f in result["faces"]:
        x, y, side = f["crop"]
        inside[y:y + side, x:x + side] = True
        assert heat[y:y + side, x:x + side].max() > 0 or f["p_fake"] in (0.0, 1.0)  # each face has its map
        x0, y0, x1, y1 = (round(v) for v in f["box"])
        assert not np.array_equal(drawn[y0, x0:x1], picture[y0, x0:x1])  # its box is drawn
    assert not heat[~inside].any()  # zero away from the faces
    said = capsys.readouterr().out
    assert "Grad-CAM" in said and str(out) in said and "2 face(s)" in said and "face 2:" in said


def test_cli_no_face_has_nothing_to_explain(tiny_dir, tmp_path, capsys):
    from tests.synthetic import write_image

    path = write_image(tmp_path / "noise.png", np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8))
    assert main(["explain", str(path), "--out", str(tmp_path / "h.png"), "--model", str(tiny_dir)]) == 2
    assert "No face found. Unmask checks faces." in capsys.readouterr().err
    assert not (tmp_path / "h.png").exists()


def test_cli_lime_and_feature_maps(tiny, tiny_dir, files, tmp_path):
    out, maps = tmp_path / "lime.png", tmp_path / "maps.png"
    layer = explain.map_layers(tiny.model)[3]
    assert main(["explain", str(files["fake"]), "--out", str(out), "--model", str(tiny_dir), "--method", "lime",
                 "--samples", "40", "--layer", layer, "--feature-maps", str(maps)]) == 0
    assert png_array(out.read_bytes()).shape == (240, 240, 3)
    assert png_array(maps.read_bytes()).size > 0


def test_cli_list_layers(tiny, tiny_dir, capsys):
    assert main(["explain", "--list-layers", "--model", str(tiny_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    maps = explain.map_layers(tiny.model)
    assert len(lines) == len(maps)
    assert f"{explain.default_layers(tiny)[0]}   (Grad-CAM default)" in lines


@pytest.mark.parametrize("kind", ["corrupt", "truncated", "not_an_image", "empty", "bomb", "missing"])
def test_cli_bad_files(tiny_dir, files, tmp_path, capsys, kind):
    out = tmp_path / "heat.png"
    assert main(["explain", str(files[kind]), "--out", str(out), "--model", str(tiny_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("unmask explain: error:") and len(err) > 40
    assert not out.exists()


def test_cli_missing_model(files, tmp_path, capsys, monkeypatch):
    import models.detector

    monkeypatch.setattr(models.detector, "BUNDLED_DIR", tmp_path / "no-models")
    assert main(["explain", str(files["real"]), "--out", str(tmp_path / "h.png"), "--model", "tiny"]) == 2
    assert "make models" in capsys.readouterr().err
    assert main(["explain", str(files["real"]), "--out", str(tmp_path / "h.png"), "--model", str(tmp_path / "nothing")]) == 2
    assert "no model at" in capsys.readouterr().err
