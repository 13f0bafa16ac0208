"""The server's page in Chromium, against a real gunicorn (`unmask serve`), on what a person
does and sees: files picked one after another faster than the server answers, a scene of
several faces (their numbers, tags, list and heat), a picture without a face, bad files.

The model is the small untrained ensemble that calls every face `real` (conftest.models_dir);
the face finder is the real one. The page's requests reach the real server; the race
scenario only holds one of them back (tests/server/page_flow_check.mjs).
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.server import files
from tests.server.conftest import ROOT, run_server
from tests.synthetic import encode, face_image, paste_scene

pytestmark = pytest.mark.browser
WORDS = json.loads((ROOT / "models" / "wording.json").read_text())
# faces-v1 files whose face the finder finds when pasted into a scene (tests/inference/test_faces.py)
SCENE_FACES = ["stylegan1-ffhq/real", "genphotos/fake", "yonsei-photoshop/real"]


@pytest.fixture(scope="module")
def server(tmp_path_factory, models_dir):
    with run_server(tmp_path_factory.mktemp("page"), models_dir, workers=1, threads=4) as s:
        yield s


def page(server, scenario: str, *paths: Path) -> dict:
    out = subprocess.run(["node", str(Path(__file__).with_name("page_flow_check.mjs")), server.url("/"), scenario,
                          *map(str, paths)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr + out.stdout
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["console_errors"] == []
    return res


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_a_late_answer_for_an_earlier_file_never_lands_on_a_newer_one(server, tmp_path):
    face = write(tmp_path / "face.jpg", encode(face_image("real", 300, 1)))
    face2 = write(tmp_path / "face2.png", encode(face_image("real", 260, 2), "PNG"))
    chart = write(tmp_path / "chart.png", encode(files.chart(), "PNG"))
    res = page(server, "race", face, chart, face2)
    # The first file's /check is answered (or aborted) after the chart's result is shown:
    # the chart's result stays, with no box, heat or legend of the face.
    assert res["before"]["verdict"] == "no_face"
    after = res["afterLateCheck"]
    assert after == res["before"]
    assert after["boxes"] == 0 and after["heatmapHidden"] and after["legendHidden"] and after["error"] is None
    # The first file's /explain comes after the second face's heat is drawn: the second
    # face's heat, boxes and legend stay.
    before, after = res["heatBefore"], res["heatAfter"]
    assert before["boxes"] == 1 and not before["heatmapHidden"] and before["heatmapSrc"]
    assert after == before


def test_a_scene_numbers_faces_left_to_right_with_one_number_each(server, tmp_path):
    faces = []
    for folder in SCENE_FACES:
        found = sorted((files.FACES_V1 / folder).glob("*.jpg"))[:1]
        if not found:
            pytest.skip(f"faces-v1 is not at {files.FACES_V1}")
        faces.append(np.asarray(Image.open(found[0]).convert("RGB")))
    # The middle face is the largest: the API lists it first, the page numbers it 2.
    picture = paste_scene([(faces[0], 80, 200, 260), (faces[1], 480, 120, 340), (faces[2], 900, 300, 220)])
    res = page(server, "scene", write(tmp_path / "scene.jpg", encode(picture)))
    p = res["page"]
    assert p["boxes"] == 3 and p["tagX"] == sorted(p["tagX"])
    # Each tag: its number from the left, then the face's verdict and the confidence of that
    # verdict (wording.json `tag`), the same number as in the face's row; never p(fake).
    assert [t.split(" ")[0] for t in p["tags"]] == ["1", "2", "3"]
    assert [r[0] for r in p["rows"]] == ["1", "2", "3"]
    for tag, row in zip(p["tags"], p["rows"]):
        number = re.search(r"\d+%", tag).group(0)
        assert tag == "{} {}".format(row[0], WORDS["tag"]["real"].format(pct=number))
        assert row[1].startswith(WORDS["labels"]["real"]) and re.findall(r"\d+%", row[1]) == [number]
    assert "p(fake)" not in p["confidence"] and WORDS["face_order"] in p["facesNote"]
    # The summary line says its number once.
    assert len(re.findall(r"\d+%", p["confidence"])) == 1
    # The heat comes alone: a layer of the picture's shape (at most 1024 px), under the
    # page's boxes, transparent far from the faces, never fully opaque over them.
    heat = res["heat"]
    assert (heat["width"], heat["height"]) == (1024, 683) and heat["heatFits"]
    assert heat["order"].index("heatmap") < heat["order"].index("boxes")
    assert heat["bottomBandAlpha"] == 0 and 0 < heat["maxAlpha"] <= 0.5 * 255 + 1
    assert res["boxesUnticked"] == "none"  # unticking the boxes leaves no box: none is baked in


def test_a_picture_without_a_face_says_so_once_and_no_rule(server, tmp_path):
    small = page(server, "noface", write(tmp_path / "chart.png", encode(files.chart((400, 300)), "PNG")))["page"]
    large = page(server, "noface", write(tmp_path / "chart_large.png", encode(files.chart((1200, 800)), "PNG")))["page"]
    for p in (small, large):
        assert p["label"] == WORDS["labels"]["no_face"] and p["ruleHidden"]
        assert WORDS["image_rule"] not in p["text"]
        # "No face found" is said once (the label), and the line under it says what that means.
        assert p["text"].lower().count("no face found") == 1
    assert small["confidence"] == WORDS["no_face_detail"]
    # A large picture was searched tile by tile too; the page says which faces may be missed.
    head = WORDS["may_miss"].split("{side}")[0]
    assert large["confidence"].startswith(head) and "turned away" in large["confidence"]


def test_errors_say_what_is_wrong_and_what_to_do_beside_a_preview(server, tmp_path):
    from skimage import data

    whole = encode(data.coffee())
    cut = page(server, "error", write(tmp_path / "cut.jpg", whole[: len(whole) * 3 // 10]))["page"]
    assert re.search(r"^The JPEG file is cut short: .* about \d+% of the picture .* get the complete file again", cut["error"])
    assert cut["errorPreviewShown"] and cut["resultHidden"]  # Chromium draws the part that came
    note = page(server, "error", write(tmp_path / "note.jpg", b"Dear all,\nthe meeting moves to Friday.\n"))["page"]
    assert note["error"].startswith("This is a text file") and "MP4, WebM or MOV video" in note["error"]
    assert not note["errorPreviewShown"]  # nothing a browser can draw
