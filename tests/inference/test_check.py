"""`unmask check`: images and videos by content, --json, calibration, and every bad input."""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from models.calibration import Calibration, logit, sigmoid
from tests.inference.conftest import noise_video
from tests.synthetic import encode, face_image
from training.commands import main

RESULT_KEYS = {"file", "ok", "kind", "verdict", "confidence", "p_fake", "p_fake_raw", "error"}
FRAME_KEYS = {"time_s", "frame_index", "faces", "verdict", "confidence", "p_fake", "p_fake_raw"}
FACE_KEYS = {"box", "crop", "detector_score", "verdict", "confidence", "p_fake", "p_fake_raw", "summary"}


def check_json(capsys, *argv) -> tuple[int, dict]:
    code = main(["check", "--json", *map(str, argv)])
    return code, json.loads(capsys.readouterr().out)


def assert_verdict(r: dict, cal: Calibration):
    assert r["verdict"] in ("fake", "real", "uncertain")
    assert 0 <= r["p_fake"] <= 1 and 0.5 <= r["confidence"] <= 1
    assert r["p_fake"] == pytest.approx(float(cal.calibrate(r["p_fake_raw"])), abs=1e-3)
    assert r["confidence"] == pytest.approx(max(r["p_fake"], 1 - r["p_fake"]), abs=1e-3)
    expected = "fake" if r["p_fake"] >= cal.fake_threshold else "real" if r["p_fake"] <= cal.real_threshold else "uncertain"
    assert r["verdict"] == expected


def test_images_and_a_video(tiny, tiny_dir, files, capsys):
    code, doc = check_json(capsys, files["real"], files["fake"], files["video"], "--model", tiny_dir, "--frames", "4")
    assert code == 0 and doc["failed"] == 0 and doc["checked"] == 3
    assert doc["model"]["architecture"] == "tiny" and doc["model"]["version"] == "test"
    assert doc["calibration"]["fake_threshold"] == tiny.calibration.fake_threshold
    image, other, video = doc["results"]
    for r in doc["results"]:
        assert RESULT_KEYS <= set(r) and r["ok"] and r["error"] is None
        assert_verdict(r, tiny.calibration)
    assert image["kind"] == other["kind"] == "image"
    # One face each, judged on its crop: the same numbers as the detector gives for that crop.
    from models.preprocessing import load_image

    assert len(image["faces"]) == 1 and FACE_KEYS <= set(image["faces"][0])
    x, y, side = image["faces"][0]["crop"]
    expected = tiny.predict_images([load_image(files["real"])[y:y + side, x:x + side]])[0]
    assert image["p_fake_raw"] == pytest.approx(expected.p_fake_raw, abs=1e-4)
    assert image["faces"][0]["p_fake"] == image["p_fake"]
    assert doc["faces"]["min_face_side"] > 0  # the contract that was applied

    assert video["kind"] == "video"
    v = video["video"]
    assert v["frames_sampled"] == len(video["frames"]) == 4 and v["frame_count"] == 10
    assert v["calibration"] == "image" and v["calibrated_on_videos"] is False  # the test tiny has no video calibration
    assert v["frames_with_face"] == sum(f["verdict"] != "no_face" for f in video["frames"]) > 0
    used = [f for f in video["frames"] if f["verdict"] != "no_face"]
    for f in used:
        assert FRAME_KEYS <= set(f)
        assert_verdict(f, tiny.calibration)
    mean_logit = float(sigmoid(np.mean(logit([f["p_fake_raw"] for f in used]))))
    assert video["p_fake_raw"] == pytest.approx(mean_logit, abs=2e-4)  # frame scores are rounded to 4 places


def test_text_output(tiny_dir, files, capsys):
    assert main(["check", str(files["real"]), str(files["video"]), "--model", str(tiny_dir), "--frames", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{files['real']}: ") and "confidence" in out[0] and "p(fake)" in out[0]
    assert out[1].strip().startswith("face 1 at (") and "p(fake)" in out[1]
    assert out[2].startswith(f"{files['video']}: ") and "3 frames sampled" in out[2]
    assert sum(" s  frame " in line for line in out) == 3
    # The test tiny has no video calibration: a video verdict says its confidence is a picture's.
    from models.wording import wording

    single = wording()["video"]["calibration_single_frame"]
    assert [line.strip() for line in out if single in line] == ([] if ": no_face" in out[2] else [single])


def test_video_without_faces_says_so(tiny_dir, tmp_path, capsys):
    code, doc = check_json(capsys, noise_video(tmp_path / "noise.webm"), "--model", tiny_dir, "--frames", "3")
    (r,) = doc["results"]
    assert code == 0 and r["video"]["frames_with_face"] == 0
    assert r["verdict"] == "no_face" and r["p_fake"] is None and r["summary"] == "No face found. Unmask checks faces."
    assert all(f["verdict"] == "no_face" and f["faces"] == [] for f in r["frames"])


def test_pictures_without_a_face_get_no_verdict(tiny_dir, tmp_path, capsys):
    from tests.synthetic import write_image

    noise = write_image(tmp_path / "noise.png", np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8))
    code, doc = check_json(capsys, noise, "--model", tiny_dir)
    (r,) = doc["results"]
    assert code == 0 and r["ok"] and r["verdict"] == "no_face" and r["faces"] == []
    assert r["p_fake"] is None and r["confidence"] is None
    assert main(["check", str(noise), "--model", str(tiny_dir)]) == 0
    assert capsys.readouterr().out.strip() == f"{noise}: no_face: No face found. Unmask checks faces."


def test_kind_comes_from_content_not_name(tiny_dir, files, tmp_path, capsys):
    video_as_jpg = shutil.copy(files["video"], tmp_path / "holiday.jpg")
    png_as_mp4 = tmp_path / "clip.mp4"
    png_as_mp4.write_bytes(encode(face_image("real", 180, 4), "PNG"))
    code, doc = check_json(capsys, video_as_jpg, png_as_mp4, "--model", tiny_dir, "--frames", "2")
    assert code == 0 and [r["kind"] for r in doc["results"]] == ["video", "image"]


def test_bad_files_fail_alone(tiny_dir, files, tmp_path, capsys):
    cut_video = tmp_path / "cut.mp4"
    data = files["video"].read_bytes()
    cut_video.write_bytes(data[: len(data) // 2])
    bad = {"corrupt": files["corrupt"], "truncated": files["truncated"], "not_an_image": files["not_an_image"],
           "empty": files["empty"], "too_many_pixels": files["bomb"], "missing": files["missing"],
           "corrupt_video": cut_video}
    too_small = tmp_path / "too_small.png"
    too_small.write_bytes(encode(face_image("real", 40, 5), "PNG"))  # under the contract's smallest face
    bad["too_small"] = too_small
    code, doc = check_json(capsys, files["real"], *bad.values(), "--model", tiny_dir)
    assert code == 1 and doc["failed"] == len(bad) and doc["checked"] == 1
    results = {r["file"]: r for r in doc["results"]}
    assert results[str(files["real"])]["ok"]
    reasons = {}
    for kind, path in bad.items():
        r = results[str(path)]
        assert not r["ok"] and r["kind"] is None and r["error"]["message"]
        reasons[kind] = r["error"]["reason"]
    assert reasons["truncated"] == "truncated" and reasons["empty"] == "empty" and reasons["missing"] == "missing"
    assert reasons["too_many_pixels"] == "too_many_pixels" and reasons["not_an_image"] == "not_an_image"
    assert reasons["corrupt"] in ("corrupt", "not_an_image") and reasons["corrupt_video"] == "corrupt"
    assert reasons["too_small"] == "too_small" and "px" in results[str(too_small)]["error"]["message"]


def test_a_cut_short_jpeg_and_a_renamed_note_are_explained(tiny_dir, tmp_path, capsys):
    """What is wrong, how much is missing and what to do, in sentences: the words the server
    sends (models/preprocessing.py makes them for both)."""
    from skimage import data

    whole = encode(data.coffee())
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole[: len(whole) * 3 // 10])  # 70% of the bytes lost: most of the rows
    note = tmp_path / "note.jpg"
    note.write_text("Dear all,\nthe meeting moves to Friday.\n")
    code, doc = check_json(capsys, cut, note, "--model", tiny_dir)
    said = {r["file"]: r["error"]["message"] for r in doc["results"]}
    missing = re.search(r"^The JPEG file is cut short: it ends after [\d.]+ KB, and about (\d+)% of the picture", said[str(cut)])
    assert missing and 50 <= int(missing.group(1)) <= 80, said[str(cut)]
    assert "get the complete file again" in said[str(cut)]
    assert said[str(note)].startswith("This is a text file.") and "MP4, WebM or MOV video" in said[str(note)]


def test_bad_file_in_text_mode_goes_to_stderr(tiny_dir, files, capsys):
    assert main(["check", str(files["truncated"]), str(files["real"]), "--model", str(tiny_dir)]) == 1
    out, err = capsys.readouterr()
    assert str(files["real"]) in out and str(files["truncated"]) not in out
    assert f"{files['truncated']}: error (truncated)" in err and "1 of 2 file(s) could not be checked" in err


def test_calibration_is_applied(tiny, tiny_dir, files, tmp_path, capsys):
    """The same network with another stored calibration gives other calibrated numbers."""
    from models.detector import Detector

    other = Detector(tiny.model, "tiny", Calibration(temperature=3.0, fake_threshold=0.99, real_threshold=0.01),
                     {"name": "tiny", "version": "recalibrated"})
    other.save(tmp_path / "recalibrated")
    _, a = check_json(capsys, files["fake"], "--model", tiny_dir)
    _, b = check_json(capsys, files["fake"], "--model", tmp_path / "recalibrated")
    ra, rb = a["results"][0], b["results"][0]
    assert ra["p_fake_raw"] == pytest.approx(rb["p_fake_raw"], abs=1e-4)  # same network
    assert rb["p_fake"] == pytest.approx(float(sigmoid(logit(rb["p_fake_raw"]) / 3.0)), abs=1e-3)
    assert rb["verdict"] == "uncertain"  # thresholds 0.99 / 0.01 are out of reach at T = 3


def test_missing_model(files, tmp_path, capsys, monkeypatch):
    import models.detector

    monkeypatch.setattr(models.detector, "BUNDLED_DIR", tmp_path / "no-models")
    assert main(["check", str(files["real"]), "--model", "ensemble"]) == 2
    err = capsys.readouterr().err
    assert "bundled 'ensemble' model is missing" in err and "make models" in err
    assert main(["check", str(files["real"]), "--model", str(tmp_path / "nowhere")]) == 2
    assert "no model at" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.keras").write_bytes(b"not a keras file")
    assert main(["check", str(files["real"]), "--model", str(broken)]) == 2
    assert "cannot load the model" in capsys.readouterr().err


def test_bad_frames_argument(tiny_dir, files, capsys):
    assert main(["check", str(files["video"]), "--model", str(tiny_dir), "--frames", "0"]) == 2
    assert "--frames" in capsys.readouterr().err


def test_provenance_is_read_printed_and_combined(tiny_dir, tmp_path, capsys):
    from tests.server import files as meta

    words = json.loads(open("models/wording.json").read())["provenance"]
    ai = tmp_path / "ai.jpg"
    ai.write_bytes(meta.jpeg_with_xmp("trainedAlgorithmicMedia"))
    plain = tmp_path / "plain.jpg"
    plain.write_bytes(encode(face_image("real", 200, 3)))
    code, doc = check_json(capsys, ai, plain, "--model", tiny_dir)
    a, p = doc["results"]
    assert a["provenance"]["tier"] == "declared" and a["verdict"] == "fake" and a["basis"] == "provenance"
    assert a["confidence"] is None and a["model_verdict"]["verdict"] in ("fake", "real", "uncertain")
    assert p["provenance"]["tier"] is None and p["basis"] == "model"
    assert main(["check", str(ai), "--model", str(tiny_dir)]) == 0
    out = capsys.readouterr().out
    assert f"provenance (declared): {words['declared']}" in out and out.startswith(f"{ai}: fake: ")
