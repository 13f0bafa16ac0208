"""The server's parts on their own: type sniffing, provenance (more in tests/inference/test_provenance.py), the
micro-batcher (with the real ensemble), the rate limiter, settings and the OpenAPI document."""
from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from models import provenance
from server.config import Config, gunicorn_settings, parse_bind, parse_rate
from server.cache import ResultCache, result_key
from server.detection import timeline
from server.ratelimit import retry_after_header
from server.uploads import sniff, sweep_orphans, temp_file
from tests.server import files
from tests.server.c2pa_signing import CAPTURE, TRAINED, sign
from tests.synthetic import encode, face_image, write_video


# --- sniffing ---------------------------------------------------------------------------
def test_sniff_tells_types_from_content(tmp_path):
    img = face_image("real", 64, 0)
    assert sniff(encode(img, "JPEG")) == "jpeg"
    assert sniff(encode(img, "PNG")) == "png"
    assert sniff(encode(img, "WEBP")) == "webp"
    assert sniff(encode(img, "GIF")) == "gif"
    assert sniff(encode(img, "BMP")) == "bmp"
    assert sniff(write_video(tmp_path / "a.mp4", seconds=0.5).read_bytes()) == "mp4"
    assert sniff(write_video(tmp_path / "a.webm", seconds=0.5).read_bytes()) == "webm"
    assert sniff(write_video(tmp_path / "a.mov", seconds=0.5).read_bytes()) in ("mov", "mp4")
    assert sniff(b"GIF87a" + bytes(20)) == "gif"
    assert sniff(b"these are not pixels") is None
    assert sniff(b"") is None


def test_temp_files_are_removed_even_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with temp_file(str(tmp_path), b"video bytes", ".mp4") as p:
            assert p.read_bytes() == b"video bytes"
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_sweep_removes_files_of_dead_workers_only(tmp_path):
    dead = multiprocessing.get_context("spawn").Process(target=int)
    dead.start()
    dead.join()
    mine = tmp_path / f"unmask-{os.getpid()}-{'a' * 32}.mp4"
    orphan = tmp_path / f"unmask-{dead.pid}-{'b' * 32}.mp4"
    other = tmp_path / "someone-elses.mp4"
    for p in (mine, orphan, other):
        p.write_bytes(b"x")
    assert sweep_orphans(str(tmp_path)) == 1
    assert mine.exists() and other.exists() and not orphan.exists()
    assert sweep_orphans(str(tmp_path), pid=os.getpid()) == 1
    assert not mine.exists() and other.exists()


# --- provenance -------------------------------------------------------------------------
def test_c2pa_generated_image_is_evidence_and_validates():
    data = sign(encode(face_image("real", 200, 1)), "image/jpeg", TRAINED, generator="Test Diffusion")
    p = provenance.inspect(data, "jpeg")
    c = p["c2pa"]
    assert c["present"] and c["ai_generated"]
    assert c["validation_state"] == "Valid"  # intact, but our test CA is on no trust list
    assert "signingCredential.untrusted" in c["validation_failures"]
    assert c["claim_generator"].startswith("Test Diffusion")
    assert p["generator_evidence"] is True
    assert any(f["source"] == "c2pa" and f["evidence"] for f in p["findings"])


def test_c2pa_camera_credentials_are_not_evidence_either_way():
    data = sign(encode(face_image("real", 200, 2)), "image/jpeg", CAPTURE, generator="Test Camera")
    p = provenance.inspect(data, "jpeg")
    assert p["c2pa"]["present"] and not p["c2pa"]["ai_generated"]
    assert p["generator_evidence"] is False


def test_c2pa_tampered_file_is_reported_invalid():
    data = bytearray(sign(encode(face_image("real", 200, 3)), "image/jpeg", TRAINED))
    data[-400] ^= 0xFF  # a pixel byte changed after signing
    c = provenance.inspect(bytes(data), "jpeg")["c2pa"]
    assert c["validation_state"] == "Invalid"
    assert "assertion.dataHash.mismatch" in c["validation_failures"]


def test_c2pa_remote_manifest_is_reported_not_fetched(listener):
    data = sign(encode(face_image("real", 200, 4)), "image/jpeg", TRAINED, remote_url=listener.url + "/manifest.c2pa")
    c = provenance.inspect(data, "jpeg")["c2pa"]
    assert c["present"] and c["remote"] and c["remote_url"].startswith(listener.url)
    assert listener.hits == []


def test_png_generator_chunks_are_evidence():
    for key in ("parameters", "prompt", "workflow"):
        p = provenance.inspect(files.png_with_text({key: "a portrait, Steps: 20, Sampler: Euler a"}), "png")
        assert p["generator_evidence"], key
        assert key in p["metadata"]["png_text"]
    compressed = provenance.inspect(files.png_with_text({"prompt": '{"3": {"class_type": "KSampler"}}'}, compressed=True), "png")
    assert compressed["generator_evidence"]
    plain = provenance.inspect(files.png_with_text({"Title": "holiday", "Author": "me"}), "png")
    assert plain["generator_evidence"] is False
    assert plain["metadata"]["png_text"] == {"Title": "holiday", "Author": "me"}


LIMITS = provenance.RULES["limits"]


def test_compressed_text_chunks_are_inflated_with_a_cap():
    texts, stopped = provenance.png_text(files.png_with_ztxt_bomb(size=64 * 1024 * 1024))
    assert len(texts["parameters"]) == LIMITS["max_text_bytes"] and "more than" in stopped
    # The cap is on all chunks together: two that each fill it give one.
    two = files.png_with_chunks([files.itxt("prompt", b"{" * (LIMITS["max_text_bytes"] + 10)), files.itxt("workflow", b"{}")])
    texts, stopped = provenance.png_text(two)
    assert list(texts) == ["prompt"] and "bytes" in stopped


def test_png_text_stops_at_the_first_malformed_chunk():
    bomb = files.png_text_bomb(chunks=20)
    texts, stopped = provenance.png_text(bomb)
    assert texts == {} and "malformed chunk" in stopped
    finding = provenance.inspect(bomb, "png")["findings"]
    assert {"source": "png", "tier": None, "evidence": False, "message": stopped} in finding
    # A bad checksum, a chunk running past the end, a compressed text that is not zlib.
    good = files.itxt("parameters", b"Steps: 20, Sampler: Euler")
    broken_crc = good[:-1] + bytes([good[-1] ^ 1])
    past_the_end = b"\x00\x10\x00\x00iTXt" + good[8:]
    for chunks, why in (([broken_crc, good], "checksum"), ([past_the_end], "malformed")):
        png = files.png_with_chunks(chunks)
        texts, stopped = provenance.png_text(png)
        assert "parameters" not in texts and why in stopped, (why, texts, stopped)
    garbage = files.png_with_chunks([files.png_chunk(b"iTXt", b"prompt\x00\x01\x00\x00\x00not zlib"), good])
    texts, stopped = provenance.png_text(garbage)
    assert texts == {} and "cannot be read" in stopped


def test_png_text_inflates_only_the_keys_it_reads_and_counts_chunks():
    # Garbage under a key provenance does not read is never inflated, so it is no error.
    unused = files.png_chunk(b"iTXt", b"Thumbnail\x00\x01\x00\x00\x00not zlib")
    texts, stopped = provenance.png_text(files.png_with_chunks([unused, files.itxt("parameters", b"Steps: 20")]))
    assert texts == {"parameters": "Steps: 20"} and stopped is None
    many = [files.itxt(f"note{i}", b"x") for i in range(LIMITS["max_text_chunks"])] + [files.itxt("parameters", b"Steps: 20")]
    texts, stopped = provenance.png_text(files.png_with_chunks(many))
    assert texts == {} and f"more than {LIMITS['max_text_chunks']} text chunks" in stopped


def test_exif_software_and_user_comment():
    sd = provenance.inspect(files.jpeg_with_exif("Stable Diffusion XL"), "jpeg")
    assert sd["generator_evidence"] and sd["metadata"]["software"] == "Stable Diffusion XL"
    gimp = provenance.inspect(files.jpeg_with_exif("GIMP 2.10"), "jpeg")
    assert gimp["generator_evidence"] is False
    assert gimp["findings"] and gimp["findings"][0]["evidence"] is False
    comment = b"UNICODE\x00" + "a face\nSteps: 30, Sampler: DPM++ 2M, CFG scale: 7".encode("utf-16-be")
    a1111 = provenance.inspect(files.jpeg_with_exif(user_comment=comment), "jpeg")
    assert a1111["generator_evidence"] and "Steps: 30" in a1111["metadata"]["exif_user_comment"]


def test_iptc_digital_source_type_in_xmp():
    ai = provenance.inspect(files.jpeg_with_xmp("trainedAlgorithmicMedia"), "jpeg")
    assert ai["generator_evidence"]
    assert ai["metadata"]["iptc_digital_source_type"] == [files.IPTC + "trainedAlgorithmicMedia"]
    camera = provenance.inspect(files.jpeg_with_xmp("digitalCapture"), "jpeg")
    assert camera["generator_evidence"] is False


def test_no_metadata_means_nothing():
    p = provenance.inspect(encode(face_image("real", 200, 5)), "jpeg")
    assert p["generator_evidence"] is False and p["findings"] == [] and p["c2pa"] == {"present": False}


# --- the video timeline (the verdict rule with provenance: tests/inference/test_provenance.py) ---
def test_timeline_merges_runs_of_equal_verdicts():
    rows = [{"time_s": t, "verdict": v, "p_fake": p} for t, v, p in
            [(0.0, "real", 0.1), (0.5, "real", 0.2), (1.0, "fake", 0.8), (1.5, "no_face", None), (2.0, "fake", 0.9)]]
    assert timeline(rows) == [
        {"start_s": 0.0, "end_s": 0.5, "verdict": "real", "frames": 2, "max_p_fake": 0.2},
        {"start_s": 1.0, "end_s": 1.0, "verdict": "fake", "frames": 1, "max_p_fake": 0.8},
        {"start_s": 1.5, "end_s": 1.5, "verdict": "no_face", "frames": 1, "max_p_fake": None},
        {"start_s": 2.0, "end_s": 2.0, "verdict": "fake", "frames": 1, "max_p_fake": 0.9},
    ]


# --- the micro-batcher, with the real ensemble ------------------------------------------
@pytest.fixture(scope="module")
def ensemble(models_dir):
    from models.detector import Detector

    return Detector.load(models_dir / "ensemble")


def test_batcher_gathers_concurrent_requests_into_one_call(ensemble):
    from server.batcher import MicroBatcher

    inputs = [ensemble.prepare(face_image(lbl, 160 + i, i)) for i in range(6) for lbl in ("real", "fake")]
    expected = ensemble.predict_prepared(np.stack(inputs))
    batcher = MicroBatcher(ensemble.predict_prepared, max_batch=8, max_wait_s=0.5)
    results = [None] * len(inputs)
    start = threading.Barrier(len(inputs))

    def client(i):
        start.wait()
        results[i] = batcher.run([inputs[i]])[0]

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    stats = batcher.stats()
    assert stats["inputs"] == len(inputs)
    assert stats["largest_batch"] == 8  # max_batch caps it
    assert stats["model_calls"] < len(inputs)
    for got, want in zip(results, expected):  # each request got its own answer
        assert got.p_fake_raw == pytest.approx(want.p_fake_raw, abs=1e-4)
        assert got.members == pytest.approx(want.members, abs=1e-4)


def test_batcher_off_calls_the_model_per_request(ensemble):
    from server.batcher import MicroBatcher

    batcher = MicroBatcher(ensemble.predict_prepared, max_batch=4, enabled=False)
    inputs = [ensemble.prepare(face_image("fake", 200, i)) for i in range(5)]
    out = batcher.run(inputs)
    assert len(out) == 5 and batcher.stats()["model_calls"] == 2  # 4 + 1


def test_batcher_passes_failures_to_every_waiter():
    from server.batcher import MicroBatcher

    def broken(batch):
        raise ValueError("model failed")

    batcher = MicroBatcher(broken, max_batch=4, max_wait_s=0.2)
    futures = [batcher.submit(np.zeros((2, 2, 3), np.float32)) for _ in range(3)]
    for f in futures:
        with pytest.raises(ValueError, match="model failed"):
            f.result(10)
    # and it keeps serving afterwards
    batcher.fn = lambda batch: [float(x.sum()) for x in batch]
    assert batcher.run([np.ones((2, 2, 3), np.float32)]) == [12.0]


# --- the result cache (memory; Redis is tested through HTTP in test_shared_state.py) ------
def test_result_cache_remembers_copies_and_forgets_the_oldest():
    cache = ResultCache("memory://", entries=2)
    k1, k2, k3 = (result_key(d, "ensemble", "1.0") for d in ("aa", "bb", "cc"))
    assert cache.get(k1) is None
    cache.put(k1, {"verdict": "real", "faces": [{"box": [1.0, 2.0, 3.0, 4.0]}]})
    got = cache.get(k1)
    assert got == {"verdict": "real", "faces": [{"box": [1.0, 2.0, 3.0, 4.0]}]}
    got["faces"].clear()  # a caller's change does not reach the cache
    assert cache.get(k1)["faces"] != []
    cache.put(k2, {"verdict": "fake"})
    cache.get(k1)  # k1 used last: k2 is the oldest now
    cache.put(k3, {"verdict": "uncertain"})
    assert cache.get(k2) is None and cache.get(k1) is not None and cache.get(k3) is not None
    state = cache.state()
    assert (state["storage"], state["shared"], state["entries_here"], state["redis_errors"]) == ("memory", False, 2, 0)
    assert result_key("aa", "ensemble", "1.0") != result_key("aa", "ensemble", "1.1")  # a new model: a new key


def test_result_cache_off_and_expired_entries():
    off = ResultCache("memory://", ttl_s=0)
    off.put("k", {"v": 1})
    assert not off.enabled and off.get("k") is None
    short = ResultCache("memory://", ttl_s=1)
    short.put("k", {"v": 1})
    assert short.get("k") == {"v": 1}
    short._memory["k"] = (0.0, short._memory["k"][1])  # as if its time had passed
    assert short.get("k") is None


def test_result_cache_shares_what_it_made_while_redis_was_down(redis_server):
    """A worker's results reach a restarted Redis once it is back, without a request: those
    made during the outage, and those the restart lost."""
    import redis

    here, there = ResultCache(redis_server.uri, ttl_s=600), ResultCache(redis_server.uri, ttl_s=600)
    here.put("before", {"v": 1})
    assert there.get("before") == {"v": 1} and here.state()["shared"] is True
    redis_server.stop()
    try:
        here.put("during", {"v": 2})
        assert here.get("during") == {"v": 2}  # from its own memory
        state = here.state()
        assert state["shared"] is False and state["waiting_for_redis"] == 1 and state["redis_errors"] >= 1
    finally:
        redis_server.start()
    deadline = time.monotonic() + 60
    while not here.state()["shared"]:
        assert time.monotonic() < deadline, here.state()
        time.sleep(0.1)
    # Both reached the restarted (empty) Redis: what was made meanwhile, and what it had lost.
    assert here.state()["waiting_for_redis"] == 0 and here.state()["shared_after_outage"] == 2
    there._memory.clear()
    assert there.get("during") == {"v": 2} and there.get("before") == {"v": 1}  # read from Redis
    assert 0 < redis.Redis.from_url(redis_server.uri).ttl("during") <= 600  # what was left of its time
    # A worker that never met an outage, and holds what a restarted Redis lost: its next hit
    # writes it back, and another worker finds it there.
    quiet = ResultCache(redis_server.uri, ttl_s=600)
    quiet.put("quiet", {"v": 3})
    redis_server.stop()
    redis_server.start()
    deadline = time.monotonic() + 60
    while quiet.get("quiet") != {"v": 3} or not quiet.state()["shared"]:  # a first call may meet the old connection
        assert time.monotonic() < deadline, quiet.state()
        time.sleep(0.1)
    assert quiet.get("quiet") == {"v": 3}
    assert ResultCache(redis_server.uri).get("quiet") == {"v": 3}


def test_retry_after_rounds_up():
    assert retry_after_header(20.0) == "20" and retry_after_header(0.2) == "1" and retry_after_header(-3) == "1"


# --- settings ---------------------------------------------------------------------------
def test_settings_parse_and_refuse_nonsense(monkeypatch):
    assert parse_rate("60/minute") == (60, 60.0) and parse_rate("5/s") == (5, 1.0) and parse_rate("") == (0, 0.0)
    with pytest.raises(ValueError, match="COUNT/minute"):
        parse_rate("lots")
    assert parse_bind("127.0.0.1:8000") == ("127.0.0.1", 8000) and parse_bind("[::1]:80") == ("::1", 80)
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_bind("localhost")
    for storage in ("sqlite:///x.db", "localhost:6379", "memcached://h"):
        with pytest.raises(ValueError, match="memory:// or redis://"):
            Config(storage_uri=storage).validate()
    Config(storage_uri="redis://127.0.0.1:6379/0").validate()
    monkeypatch.setenv("UNMASK_MAX_IMAGE_BYTES", "1000")
    monkeypatch.setenv("UNMASK_CORS_ORIGINS", "chrome-extension://abc, https://example.org")
    monkeypatch.setenv("UNMASK_BATCHING", "off")
    cfg = Config.from_env()
    assert cfg.max_image_bytes == 1000 and cfg.batching is False
    assert cfg.cors_origins == ["chrome-extension://abc", "https://example.org"]
    monkeypatch.setenv("UNMASK_CORS_ORIGINS", "")  # set and empty: no other origin at all
    assert Config.from_env().cors_origins == []
    monkeypatch.delenv("UNMASK_CORS_ORIGINS")  # unset: this checkout's own extension
    assert Config.from_env().cors_origins == ["chrome-extension://kdmepkbpdjeiglledacpabjjbmcjmhgo"]
    monkeypatch.setenv("UNMASK_WORKERS", "3")
    monkeypatch.setenv("UNMASK_THREADS", "2")
    monkeypatch.setenv("UNMASK_BIND", "0.0.0.0:9000")
    s = gunicorn_settings()
    assert (s["workers"], s["threads"], s["bind"]) == (3, 2, "0.0.0.0:9000")
    assert (s["read_timeout"], s["read_min_rate"]) == (20.0, 65536)
    monkeypatch.setenv("UNMASK_READ_TIMEOUT", "0")
    with pytest.raises(ValueError, match="UNMASK_READ_TIMEOUT must be positive"):
        gunicorn_settings()
    monkeypatch.delenv("UNMASK_READ_TIMEOUT")
    monkeypatch.setenv("UNMASK_WORKERS", "many")
    with pytest.raises(ValueError, match="UNMASK_WORKERS"):
        gunicorn_settings()
    with pytest.raises(ValueError, match="unknown server setting"):
        Config().updated({"max_imgae_bytes": 1})


# --- the OpenAPI document ---------------------------------------------------------------
def test_openapi_document_matches_the_routes():
    from server import create_app

    app = create_app(load_model=False)
    doc = json.loads((Path(__file__).resolve().parents[2] / "server" / "openapi.json").read_text())
    documented = {(path, method.upper()) for path, item in doc["paths"].items() for method in item}
    routed = {
        (rule.rule, method)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert documented == routed
    # every reference resolves
    text = json.dumps(doc)
    for ref in set(__import__("re").findall(r'"\$ref": "#/components/schemas/(\w+)"', text)):
        assert ref in doc["components"]["schemas"], ref
