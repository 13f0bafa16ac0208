"""A server configured against abuse, through HTTP: API key, per-client rate limit shared by
two workers (counted in a real Redis), CORS for the extension's origin only, and uploads kept
where configured.

The server trusts one proxy, so each test speaks as its own client (X-Forwarded-For)."""
from __future__ import annotations

import pytest

from tests.server.conftest import run_server
from tests.synthetic import encode, face_image

KEY = "test-key-5b1f"
EXTENSION = "chrome-extension://abcdefghijklmnopabcdefghijklmnop"
LIMIT = 6


@pytest.fixture(scope="module")
def server(tmp_path_factory, models_dir, redis_server):
    root = tmp_path_factory.mktemp("guard")
    with run_server(root, models_dir, workers=2, threads=2, api_key=KEY, rate_limit=f"{LIMIT}/minute", trust_proxy=1,
                    storage_uri=redis_server.uri,
                    cors_origins=f"{EXTENSION},https://unmask.example", upload_dir=root / "kept") as s:
        s.kept = root / "kept"
        yield s


def as_client(n: int, key: str | None = KEY, **extra) -> dict:
    h = {"X-Forwarded-For": f"10.0.0.{n}", "Connection": "close", **extra}
    if key is not None:
        h["X-API-Key"] = key
    return h


def image(seed=0) -> dict:
    return {"file": ("face.jpg", encode(face_image("real", 200, seed)), "image/jpeg")}


def test_api_key_is_required_except_for_health(server):
    # Without the key, health says whether the server is up and nothing else.
    public = server.get("/api/v1/health", headers=as_client(1, key=None))
    assert public.status_code == 200 and public.json() == {"status": "ok"}
    full = server.get("/api/v1/health", headers=as_client(1)).json()
    assert full["model"]["name"] == "ensemble" and "batching" in full and "worker_pid" not in full
    assert server.get("/api/v1/openapi.json", headers=as_client(1, key=None)).status_code == 200
    for headers, why in ((as_client(1, key=None), "missing"), (as_client(1, key="wrong"), "wrong")):
        for r in (server.post("/api/v1/check", files=image(), headers=headers), server.get("/api/v1/models", headers=headers)):
            assert r.status_code == 401
            body = r.json()
            assert body["error"] == "unauthorized" and why in body["message"] and "X-API-Key" in body["message"]
    ok = server.post("/api/v1/check", files=image(), headers=as_client(1))
    assert ok.status_code == 200 and ok.json()["verdict"] == "real"


def test_rate_limit_per_client_with_retry_after(server):
    # Connection: close spreads requests over both workers; the limit holds across them.
    codes = [server.get("/api/v1/models", headers=as_client(2)).status_code for _ in range(LIMIT + 2)]
    assert codes == [200] * LIMIT + [429, 429]
    r = server.get("/api/v1/models", headers=as_client(2))
    assert r.status_code == 429 and r.json()["error"] == "rate_limited"
    retry = int(r.headers["Retry-After"])
    assert 1 <= retry <= 60  # a moving minute: the first request leaves it within the minute
    assert f"retry after {retry} s" in r.json()["message"]
    # Another client is not affected; health is never limited.
    assert server.get("/api/v1/models", headers=as_client(3)).status_code == 200
    assert server.get("/api/v1/health", headers=as_client(2)).status_code == 200


def test_guessing_the_key_is_rate_limited_too(server):
    codes = [server.get("/api/v1/models", headers=as_client(4, key=f"guess{i}")).status_code for i in range(LIMIT + 1)]
    assert codes == [401] * LIMIT + [429]


def test_cors_allows_only_configured_origins(server):
    import requests

    allowed = requests.options(server.url("/api/v1/check"), timeout=30, headers=as_client(5, key=None, **{
        "Origin": EXTENSION, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-api-key"}))
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == EXTENSION
    assert "x-api-key" in allowed.headers["Access-Control-Allow-Headers"].lower()
    other = requests.options(server.url("/api/v1/check"), timeout=30, headers=as_client(5, key=None, **{
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}))
    assert "Access-Control-Allow-Origin" not in other.headers
    # Actual responses, errors included, carry the header for the extension to read them.
    r = server.post("/api/v1/check", files=image(), headers=as_client(6, key=None, Origin=EXTENSION))
    assert r.status_code == 401 and r.headers["Access-Control-Allow-Origin"] == EXTENSION
    # Another site's page is refused outright, even with the key (tests/server/test_attacks.py).
    r = server.post("/api/v1/check", files=image(), headers=as_client(6, Origin="https://evil.example"))
    assert r.status_code == 403 and "Access-Control-Allow-Origin" not in r.headers


def test_uploads_are_kept_only_where_configured(server):
    import hashlib

    data = encode(face_image("fake", 210, 9))
    r = server.post("/api/v1/check", files={"file": ("face.jpg", data, "image/jpeg")}, headers=as_client(7))
    assert r.status_code == 200 and r.json()["stored"] is True
    kept = server.kept / f"{hashlib.sha256(data).hexdigest()}.jpg"
    assert kept.read_bytes() == data
    assert (kept.parent / (kept.name + ".json")).exists()
    before = sorted(p.name for p in server.kept.iterdir())
    refused = server.post("/api/v1/check", data=b"not an image", headers=as_client(7))
    assert refused.status_code == 415
    assert sorted(p.name for p in server.kept.iterdir()) == before  # refused files are not kept
    assert all(p.suffix in (".jpg", ".json") for p in server.kept.iterdir())


@pytest.mark.browser
def test_page_asks_for_the_key_and_then_checks(server, tmp_path):
    import json
    import subprocess
    from pathlib import Path

    from tests.server.conftest import ROOT

    face = tmp_path / "face.jpg"
    face.write_bytes(encode(face_image("real", 200, 12)))
    out = subprocess.run(["node", str(Path(__file__).with_name("page_key_check.mjs")), server.url("/"), str(face), KEY],
                         capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert out.returncode == 0, out.stderr + out.stdout
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert "API key is missing" in res["error"] and res["keyBoxOpen"] is True
    assert res["verdict"] == "real" and res["errorHidden"] is True
