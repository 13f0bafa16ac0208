"""Provenance through HTTP against a real gunicorn with one worker, whose memory and CPU time
the tests read from /proc: hostile metadata must cost the worker next to nothing."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.server import files
from tests.server.conftest import ROOT, run_server, worker_pids

MB = 1_000_000
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


@pytest.fixture(scope="module")
def server(tmp_path_factory, models_dir):
    with run_server(tmp_path_factory.mktemp("provenance"), models_dir, workers=1, threads=2) as s:
        yield s


def worker_pid(server) -> int:
    """The one gunicorn worker."""
    pids = worker_pids(server)
    assert len(pids) == 1, pids
    return pids.pop()


def peak_rss(pid: int) -> int:
    """The process's high-water mark of resident memory (VmHWM), in bytes: every peak since it
    started counts, however short, so no sampling can miss one."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of all the process's threads: unlike wall time, not stretched by
    other processes competing for the machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def check_png(server, data: bytes):
    return server.post("/api/v1/check", files={"file": ("picture.png", data, "image/png")}, headers={"Connection": "close"})


def test_png_text_chunk_bomb_costs_the_worker_little(server):
    """Issue 18, item 1: hundreds of iTXt chunks of 1 KB that each inflate to 1 MiB, after a
    zero-length chunk of an invalid type. Before the fix the worker kept ~2 MiB per chunk
    (500 chunks: ~550 MB more at its peak, measured) and spent seconds inflating them."""
    pid = worker_pid(server)
    # The same picture without the chunks first, so the baseline includes a whole check.
    plain = check_png(server, files.png_with_chunks([]))
    assert plain.status_code == 200, plain.text
    before, cpu_before = peak_rss(pid), cpu_seconds(pid)
    bomb = files.png_text_bomb(chunks=500)
    assert len(bomb) < 700_000
    resp = check_png(server, bomb)
    grown, cpu = peak_rss(pid) - before, cpu_seconds(pid) - cpu_before
    assert worker_pid(server) == pid  # the same worker answered, and is alive
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["verdict"] == plain.json()["verdict"]  # the face check ran as before
    assert grown < 200 * MB, f"the worker's peak memory grew by {grown / MB:.0f} MB"
    assert cpu < 10, f"the worker spent {cpu:.1f} s of CPU on one picture"
    assert any("malformed chunk" in f["message"] for f in body["provenance"]["findings"]), body["provenance"]


# --- the three tiers through the API (the test CA trusted with UNMASK_TRUST_ANCHORS) -------------
@pytest.fixture(scope="module")
def trusting_server(tmp_path_factory, models_dir):
    from tests.server.c2pa_signing import ca_pem

    root = tmp_path_factory.mktemp("trusting")
    anchors = root / "anchors.pem"
    anchors.write_text(ca_pem())
    with run_server(root, models_dir, workers=1, threads=2, trust_anchors=anchors) as s:
        yield s


def post(server, data: bytes, name: str, mime: str) -> dict:
    resp = server.post("/api/v1/check", files={"file": (name, data, mime)})
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_signed_declared_changed_captured_and_stripped(trusting_server):
    from tests.server.c2pa_signing import CAPTURE, TRAINED, sign
    from tests.synthetic import encode, face_image

    words = json.loads((ROOT / "models" / "wording.json").read_text())["provenance"]
    photo = encode(face_image("real", 200, 21))
    signed = sign(photo, "image/jpeg", TRAINED, generator="Test Diffusion")
    body = post(trusting_server, signed, "ai.jpg", "image/jpeg")
    p = body["provenance"]
    assert body["verdict"] == "fake" and body["basis"] == "provenance" and body["model_verdict"]["verdict"] == "real"
    assert len(body["faces"]) == 1 and body["faces"][0]["verdict"] == "real"  # the face check still shows
    assert (p["tier"], p["signer"], p["claim_generator"]) == ("signed", "Unmask tests", "Test Diffusion 1.0")
    assert p["statement"] == "Made with AI, signed by Unmask tests (verified)" and body["summary"].endswith(p["statement"])
    assert p["actions"][0]["digital_source_type"] == TRAINED and p["validation_codes"] == []
    # Edited after signing: said plainly, and still a claim.
    edited = bytearray(signed)
    edited[-400] ^= 0xFF
    p = post(trusting_server, bytes(edited), "edited.jpg", "image/jpeg")["provenance"]
    assert p["changed"] == words["changed"] and "assertion.dataHash.mismatch" in p["validation_codes"]
    # A stripped copy (the pixels saved again, as sites do) is judged by the face check alone.
    from models.preprocessing import load_image

    stripped = post(trusting_server, encode(load_image(signed)), "copy.jpg", "image/jpeg")
    assert stripped["provenance"]["tier"] is None and stripped["basis"] == "model" and stripped["verdict"] == "real"
    # A trusted capture is shown, and leaves the verdict to the faces.
    captured = post(trusting_server, sign(photo, "image/jpeg", CAPTURE, generator="Test Camera"), "cam.jpg", "image/jpeg")
    assert captured["provenance"]["statement"] == words["captured"].format(signer="Unmask tests")
    assert captured["verdict"] == "real" and captured["basis"] == "model"


def test_the_watermark_alone_makes_a_picture_without_a_face_fake(trusting_server):
    from models.watermark import MESSAGES
    from tests.synthetic import encode

    marked = encode(files.sd_watermark(files.textured(256, 2), MESSAGES["Stable Diffusion XL"]), "PNG")
    body = post(trusting_server, marked, "sdxl.png", "image/png")
    assert body["verdict"] == "fake" and body["basis"] == "provenance" and body["faces"] == []
    assert body["provenance"]["tier"] == "declared" and body["provenance"]["metadata"]["watermark"]["generator"] == "Stable Diffusion XL"
