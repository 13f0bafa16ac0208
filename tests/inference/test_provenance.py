"""The provenance reader (models/provenance.py) on its own: three tiers of evidence from C2PA
Content Credentials (real c2pa-python, signed here with a test CA, and the c2pa-rs fixtures in
shared/), XMP, PNG text chunks, EXIF and the Stable Diffusion watermark; the verdict rule;
hostile files."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models import provenance
from models.provenance import combine
from models.watermark import MESSAGES
from tests.server import files
from tests.server.c2pa_signing import CAPTURE, TRAINED, ca_pem, sign
from tests.synthetic import encode, face_image

ROOT = Path(__file__).resolve().parents[2]
WORDS = json.loads((ROOT / "models" / "wording.json").read_text())["provenance"]
FIXTURES = ROOT.parent / "shared" / "data" / "provenance"
LIMITS = provenance.RULES["limits"]


@pytest.fixture
def trusted(tmp_path, monkeypatch):
    """The test CA as a trust anchor, as a deployment adds its own with UNMASK_TRUST_ANCHORS."""
    path = tmp_path / "anchors.pem"
    path.write_text(ca_pem())
    monkeypatch.setenv(provenance.ANCHORS_ENV, str(path))
    return path


def jpeg(seed):
    return encode(face_image("real", 200, seed))


# --- C2PA: signed, declared, captured, changed ---------------------------------------------
def test_trusted_ai_credentials_are_signed_with_the_signer_named(trusted):
    p = provenance.inspect(sign(jpeg(1), "image/jpeg", TRAINED, generator="Test Diffusion"), "jpeg")
    assert p["tier"] == "signed" and p["ai"] and p["validation_state"] == "Trusted"
    assert p["signer"] == "Unmask tests" and p["claim_generator"] == "Test Diffusion 1.0"
    assert p["statement"] == WORDS["signed"].format(signer="Unmask tests") == "Made with AI, signed by Unmask tests (verified)"
    assert p["actions"] == [{"action": "c2pa.created", "digital_source_type": TRAINED, "software_agent": None}]
    assert p["validation_codes"] == [] and p["changed"] is None


def test_the_same_credentials_from_an_unknown_signer_are_only_declared():
    p = provenance.inspect(sign(jpeg(1), "image/jpeg", TRAINED), "jpeg")
    assert p["tier"] == "declared" and p["validation_state"] == "Valid"
    assert "signingCredential.untrusted" in p["validation_codes"]
    assert p["statement"] == WORDS["declared_untrusted"].format(signer="Unmask tests")


def test_credentials_of_a_changed_picture_say_so_plainly(trusted):
    data = bytearray(sign(jpeg(3), "image/jpeg", TRAINED))
    data[-400] ^= 0xFF  # a pixel byte changed after signing
    p = provenance.inspect(bytes(data), "jpeg")
    assert p["validation_state"] == "Invalid" and "assertion.dataHash.mismatch" in p["validation_codes"]
    assert p["changed"] == WORDS["changed"]
    assert p["tier"] == "declared" and p["statement"] == WORDS["declared_invalid"]  # still a claim, no longer a proof


def test_a_trusted_capture_is_captured_and_never_makes_a_verdict_real(trusted):
    p = provenance.inspect(sign(jpeg(2), "image/jpeg", CAPTURE, generator="Test Camera"), "jpeg")
    assert p["tier"] == "captured" and not p["ai"]
    assert p["statement"] == WORDS["captured"].format(signer="Unmask tests")
    for verdict, pf in (("fake", 0.9), ("uncertain", 0.5), ("no_face", None)):
        assert combine(_model(verdict, pf), p)["verdict"] == verdict


def test_an_untrusted_capture_says_nothing():
    p = provenance.inspect(sign(jpeg(2), "image/jpeg", CAPTURE), "jpeg")
    assert p["tier"] is None and p["statement"] is None and p["c2pa"]["present"]


def test_c2pa_rs_fixtures_with_their_test_anchors(monkeypatch):
    if not FIXTURES.exists():
        pytest.skip(f"no provenance data at {FIXTURES}")
    read = lambda name: provenance.inspect((FIXTURES / "c2pa-rs-fixtures" / name).read_bytes(), "jpeg")  # noqa: E731
    # Without the test anchors (the shipped trust list only) no fixture is trusted.
    assert read("C.jpg")["tier"] == "declared"  # algorithmicMedia, from an unknown signer
    monkeypatch.setenv(provenance.ANCHORS_ENV, str(FIXTURES / "trust-lists" / "c2pa-rs-TEST-ANCHORS.pem"))
    c = read("C.jpg")
    assert c["tier"] == "signed" and c["signer"] == "C2PA Test Signing Cert"
    assert read("CA.jpg")["tier"] is None  # trusted, but neither an AI claim nor a capture
    xca = read("XCA.jpg")
    assert xca["changed"] == WORDS["changed"] and xca["tier"] is None
    assert "claimSignature.mismatch" in read("E-sig-CA.jpg")["validation_codes"]
    ocsp = read("ocsp.jpg")  # Adobe's signer, not under the test anchors
    assert ocsp["tier"] == "declared" and any("trainedAlgorithmicMedia" in (a["digital_source_type"] or "") for a in ocsp["actions"])
    assert read("no_manifest.jpg")["tier"] is None


def test_shipped_trust_list_is_the_official_one():
    pem = (ROOT / "models" / "trust" / "C2PA-TRUST-LIST.pem").read_text()
    assert pem.count("BEGIN CERTIFICATE") == 30
    assert "TEST" not in provenance.trust_anchors(None).upper().replace("ATTEST", "")  # no test anchors shipped


# --- metadata: declared ---------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda: files.jpeg_with_xmp("trainedAlgorithmicMedia"),
    lambda: files.jpeg_with_xmp("compositeSynthetic"),
    lambda: files.png_with_text({"parameters": "a portrait, Steps: 20, Sampler: Euler a, Seed: 1"}),
    lambda: files.png_with_text({"prompt": '{"3": {"class_type": "KSampler"}}', "workflow": "{}"}, compressed=True),
    lambda: files.png_with_text({"Software": "NovelAI", "Comment": '{"steps": 28}'}),
    lambda: files.novelai_stealth_png({"Description": "a portrait", "steps": 28}),
    lambda: files.novelai_stealth_png({"steps": 28}, compressed=False),
    lambda: files.jpeg_with_exif("Midjourney v6"),
    lambda: files.jpeg_with_exif(user_comment=b"UNICODE\x00" + "a face\nSteps: 30, Sampler: DPM++ 2M".encode("utf-16-be")),
], ids=["xmp", "xmp-composite", "a1111", "comfyui", "novelai", "novelai-stealth", "novelai-stealth-plain", "exif-software", "exif-comment"])
def test_generator_metadata_is_declared(make):
    data = make()
    p = provenance.inspect(data, "png" if data.startswith(b"\x89PNG") else "jpeg")
    assert p["tier"] == "declared" and p["statement"] == WORDS["declared"] and p["evidence"]


@pytest.mark.parametrize("make", [
    lambda: files.jpeg_with_xmp("digitalCapture"),
    lambda: files.png_with_text({"Title": "holiday", "Author": "me"}),
    lambda: files.jpeg_with_exif("GIMP 2.10"),
    lambda: jpeg(5),
    lambda: encode(np.dstack([face_image("real", 200, 6), np.full((200, 200), 200, np.uint8)]), "PNG"),  # alpha, no message
], ids=["xmp-capture", "png-title", "exif-gimp", "nothing", "rgba-nothing"])
def test_other_metadata_says_nothing(make):
    data = make()
    p = provenance.inspect(data, "png" if data.startswith(b"\x89PNG") else "jpeg")
    assert p["tier"] is None and p["statement"] is None and not p["generator_evidence"]


# --- the Stable Diffusion watermark -----------------------------------------------------------
@pytest.mark.parametrize("name", list(MESSAGES))
def test_the_stable_diffusion_watermark_is_declared_and_dies_under_jpeg(name):
    from models.preprocessing import load_image

    marked = files.sd_watermark(files.textured(256, 1), MESSAGES[name])
    png = encode(marked, "PNG")
    p = provenance.inspect(png, "png", pixels=load_image(png))
    assert p["tier"] == "declared" and p["metadata"]["watermark"]["generator"] == name
    jpg = encode(marked, "JPEG")
    q = provenance.inspect(jpg, "jpeg", pixels=load_image(jpg))
    assert q["tier"] is None and not q["metadata"]["watermark"]["found"]
    plain = files.textured(256, 1)
    assert provenance.inspect(encode(plain, "PNG"), "png", pixels=plain)["tier"] is None


def test_a_large_picture_is_read_in_its_middle_at_a_flat_cost():
    from models.preprocessing import load_image
    from models.watermark import MAX_BLOCKS, block_bits

    marked = files.sd_watermark(files.textured(1200, 3), MESSAGES["Stable Diffusion v1/v2"])
    bits, number = block_bits(marked)
    assert len(bits) <= MAX_BLOCKS < (1200 // 8) ** 2 and number[0] > 0  # a band, not the whole picture
    marked[:300] = marked[-300:] = 255  # the top and bottom quarters washed out: the mark is clipped there
    png = encode(marked, "PNG")
    p = provenance.inspect(png, "png", pixels=load_image(png))
    assert p["tier"] == "declared" and p["metadata"]["watermark"]["generator"] == "Stable Diffusion v1/v2"


# --- hostile files: a clear finding, no crash ---------------------------------------------------
def test_a_watermark_search_on_a_one_pixel_image_says_why_not():
    p = provenance.inspect(encode(np.zeros((1, 1, 3), np.uint8), "PNG"), "png", pixels=np.zeros((1, 1, 3), np.uint8))
    assert p["tier"] is None and "too small" in p["metadata"]["watermark"]["note"]


def test_truncated_and_oversized_credentials_and_huge_xmp():
    signed = sign(jpeg(7), "image/jpeg", TRAINED)
    at = signed.find(b"c2pa")
    truncated = provenance.inspect(signed[: at + 2000], "jpeg")
    assert truncated["c2pa"]["present"] and truncated["c2pa"]["validation_state"] in ("Unreadable", "Invalid"), truncated["c2pa"]
    huge = files.jpeg_with_xmp("trainedAlgorithmicMedia")
    padding = b"<!--" + b" " * (LIMITS["max_text_bytes"] + 10) + b"-->"
    huge = huge.replace(b"<rdf:RDF", padding + b"<rdf:RDF", 1)  # the JPEG segment's length no longer fits: a broken file too
    p = provenance.inspect(huge, "jpeg")
    assert p["tier"] is None and any("over" in f["message"] and f["source"] == "xmp" for f in p["findings"])


def test_an_oversized_manifest_is_read_and_none_of_its_bulk_reaches_the_answer():
    # 12 MB of Content Credentials (a thumbnail of noise), under the server's 20 MB upload
    # limit: c2pa-rs reads it in one piece (about 0.3 s and 30 MB here), the tier is right,
    # and the answer stays a few KB: the thumbnail is never echoed back.
    bulk = np.random.default_rng(0).integers(0, 256, 12_000_000, dtype=np.uint8).tobytes()
    data = sign(jpeg(9), "image/jpeg", TRAINED, generator="Test Diffusion", thumbnail=bulk)
    assert len(data) > 12_000_000
    p = provenance.inspect(data, "jpeg")
    assert p["tier"] == "declared" and p["c2pa"]["validation_state"] == "Valid", p["c2pa"]
    assert p["c2pa"]["claim_generator"] == "Test Diffusion 1.0"
    assert len(json.dumps(p)) < 20_000


def test_a_remote_manifest_is_reported_not_fetched():
    from tests.server.conftest import Listener

    listener = Listener()
    try:
        data = sign(jpeg(4), "image/jpeg", TRAINED, remote_url=listener.url + "/manifest.c2pa")
        p = provenance.inspect(data, "jpeg")
        assert p["c2pa"]["remote"] and p["c2pa"]["remote_url"].startswith(listener.url) and p["tier"] is None
        assert listener.hits == []
    finally:
        listener.close()


# --- the verdict rule ---------------------------------------------------------------------------
def _model(verdict, p):
    if p is None:
        return {"verdict": verdict, "confidence": None, "p_fake": None, "p_fake_raw": None}
    return {"verdict": verdict, "confidence": round(max(p, 1 - p), 4), "p_fake": p, "p_fake_raw": p}


def test_signed_or_declared_make_the_picture_fake_even_without_a_face():
    declared = provenance.inspect(files.jpeg_with_xmp("trainedAlgorithmicMedia"), "jpeg")
    nothing = provenance.inspect(jpeg(5), "jpeg")
    for verdict, p in (("real", 0.1), ("uncertain", 0.5), ("no_face", None)):
        out = combine(_model(verdict, p), declared)
        assert out["verdict"] == "fake" and out["basis"] == "provenance" and out["confidence"] is None
        assert out["summary"].endswith(WORDS["declared"]) and out["model_verdict"]["verdict"] == verdict
        assert combine(_model(verdict, p), nothing)["verdict"] == verdict
    fake = combine(_model("fake", 0.93), declared)
    assert fake["confidence"] == 0.93 and fake["basis"] == "model+provenance"
