"""`unmask predict`: a CSV row for every image below a folder, bad files included."""
from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest

from tests.synthetic import face_image, write_image
from training.commands import main
from training.scoring import COLUMNS, score_files


@pytest.fixture
def folder(tmp_path, files):
    root = tmp_path / "photos"
    for i in range(5):
        write_image(root / "a" / f"real_{i}.jpg", face_image("real", 170 + 10 * i, 20 + i))
        write_image(root / "b" / "deeper" / f"fake_{i}.png", face_image("fake", 200, 30 + i))
    (root / "bad").mkdir()
    for kind in ("corrupt", "truncated", "not_an_image", "empty", "bomb"):
        shutil.copy(files[kind], root / "bad" / files[kind].name)
    write_image(root / "noise.png", np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8))
    # Generator metadata, as A1111 writes it, in a picture without a face.
    from tests.server.files import png_with_text

    (root / "generated.png").write_bytes(png_with_text({"parameters": "a face, Steps: 20, Sampler: Euler a"}))
    (root / "readme.txt").write_text("not an image, and not named like one")
    return root


def read_rows(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS
        return {row["path"]: row for row in reader}


def test_every_image_gets_a_row(tiny, tiny_dir, folder, tmp_path, capsys):
    out = tmp_path / "out" / "preds.csv"
    code = main(["predict", "--model", str(tiny_dir), str(folder), "--out", str(out), "--batch-size", "4"])
    assert code == 1  # some files were errors; the CSV is complete all the same
    rows = read_rows(out)
    assert len(rows) == 17 and "readme.txt" not in rows
    generated = rows.pop("generated.png")
    assert generated["provenance"] == "declared" and generated["verdict"] == "fake"
    assert all(r["provenance"] == "" for r in rows.values())
    assert list(rows) == sorted(rows)
    for name in ("corrupt.jpg", "truncated.jpg", "notes.jpg", "empty.png", "bomb.png"):
        row = rows[f"bad/{name}"]
        assert row["verdict"] == "error" and row["p_fake"] == "" and ":" in row["error"]
    assert rows["bad/truncated.jpg"]["error"].startswith("truncated:")
    assert rows["bad/bomb.png"]["error"].startswith("too_many_pixels:")
    assert rows["noise.png"]["verdict"] == "no_face" and rows["noise.png"]["faces"] == "0"
    assert rows["noise.png"]["p_fake"] == "" and rows["noise.png"]["confidence"] == ""  # no score for no face
    good = {k: r for k, r in rows.items() if not k.startswith("bad/") and k != "noise.png"}
    assert len(good) == 10
    cal = tiny.calibration
    for path, row in good.items():
        assert row["error"] == "" and row["verdict"] in ("fake", "real", "uncertain") and row["faces"] == "1"
        p_raw, p = float(row["p_fake_raw"]), float(row["p_fake"])
        assert p == pytest.approx(float(cal.calibrate(p_raw)), abs=1e-3)  # calibrated, not raw
        assert row["verdict"] == cal.verdict(p_raw)["verdict"]
    # Batched checking agrees with checking one file at a time.
    from models.inference import FaceCheck
    from models.preprocessing import load_image

    one = FaceCheck(tiny).check_image(load_image(folder / "b" / "deeper" / "fake_3.png"))
    assert float(good["b/deeper/fake_3.png"]["p_fake_raw"]) == pytest.approx(one["p_fake_raw"], abs=1e-4)
    err = capsys.readouterr().err
    assert "17 images checked" in err and "5 error" in err and "1 no_face" in err
    assert "1 file(s) without an image extension" in err


def test_score_files_keeps_order_and_errors(tiny, files):
    sources = [files["real"], files["truncated"], files["fake"], files["empty"], files["wide"]]
    a = list(score_files(tiny, sources, batch_size=2, progress=False))
    b = list(score_files(tiny, sources, batch_size=32, workers=1, progress=False))
    assert [s.index for s in a] == list(range(5))
    assert [s.error_reason for s in a] == [None, "truncated", None, "empty", None]
    for x, y in zip(a, b):
        assert (x.p_raw is None) == (y.p_raw is None)
        if x.p_raw is not None:
            assert x.p_raw == pytest.approx(y.p_raw, abs=1e-5)


def test_empty_and_missing_folders(tiny_dir, tmp_path, capsys):
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "notes.txt").write_text("hello")
    assert main(["predict", "--model", str(tiny_dir), str(empty), "--out", str(tmp_path / "p.csv")]) == 2
    assert "no images" in capsys.readouterr().err and not (tmp_path / "p.csv").exists()
    assert main(["predict", "--model", str(tiny_dir), str(tmp_path / "nowhere"), "--out", str(tmp_path / "p.csv")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_missing_model(folder, tmp_path, capsys):
    assert main(["predict", "--model", str(tmp_path / "no-model"), str(folder), "--out", str(tmp_path / "p.csv")]) == 2
    assert "no model at" in capsys.readouterr().err and not (tmp_path / "p.csv").exists()


def test_all_good_exits_zero(tiny_dir, tmp_path, capsys):
    root = tmp_path / "good"
    write_image(root / "x.webp", face_image("fake", 160, 1))
    write_image(root / "y.bmp", face_image("real", 160, 2))
    assert main(["predict", "--model", str(tiny_dir), str(root), "--out", str(tmp_path / "p.csv"), "--quiet"]) == 0
    assert set(read_rows(tmp_path / "p.csv")) == {"x.webp", "y.bmp"}
