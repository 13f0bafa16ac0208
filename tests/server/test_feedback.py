"""Users' reports through HTTP against a real gunicorn (two workers sharing the SQLite file),
with an API key and a rate limit like every endpoint; then `unmask feedback export` reads
them back as JSON, CSV and a faces-v1 folder that training's data reader takes.

The server trusts one proxy, so each test speaks as its own client (X-Forwarded-For)."""
from __future__ import annotations

import base64
import csv
import hashlib
import json
import itertools
import subprocess

import pytest

from tests.server.conftest import UNMASK, run_server, server_env
from tests.synthetic import encode, face_image

KEY = "feedback-key-9c2e"
LIMIT = 8
CLIENTS = itertools.count(10)  # a client of its own for each malformed body: the limit stays out of the way


@pytest.fixture(scope="module")
def server(tmp_path_factory, models_dir, redis_server):
    root = tmp_path_factory.mktemp("feedback")
    db = root / "reports" / "feedback.sqlite3"
    # Redis counts the limit once for both workers (memory:// would count per worker).
    with run_server(root, models_dir, workers=2, threads=2, api_key=KEY, rate_limit=f"{LIMIT}/minute", trust_proxy=1,
                    storage_uri=redis_server.uri,
                    feedback_uri=f"sqlite:///{db}", max_image_bytes=2**20) as s:
        s.db, s.root, s.models_dir = db, root, models_dir
        yield s


def as_client(n: int, key: str | None = KEY) -> dict:
    h = {"X-Forwarded-For": f"10.1.0.{n}", "Connection": "close"}
    if key is not None:
        h["X-API-Key"] = key
    return h


def picture(seed: int) -> bytes:
    return encode(face_image("fake", 200, seed))


def report(data: bytes, says="fake", **extra) -> dict:
    return {"sha256": hashlib.sha256(data).hexdigest(), "says": says, "verdict": "real", "p_fake": 0.12,
            "model": "tiny 1.0", "image_url": "https://example.org/a.jpg", "page_url": "https://example.org/post", **extra}


def export(server, *args) -> subprocess.CompletedProcess:
    return subprocess.run(UNMASK + ["feedback", "export", "--db", f"sqlite:///{server.db}", *args], capture_output=True,
                          text=True, env=server_env(server.models_dir, server.root), timeout=300)


def test_reports_are_kept_with_the_picture_only_when_sent(server):
    with_pic, without_pic = picture(1), picture(2)
    r = server.post("/api/v1/feedback", json=report(with_pic, note="the ears are wrong", picture=base64.b64encode(with_pic).decode()),
                    headers=as_client(1))
    assert r.status_code == 201, r.text
    assert r.json()["picture_kept"] is True and r.json()["says"] == "fake"
    r = server.post("/api/v1/feedback", json=report(without_pic, says="real"), headers=as_client(1))
    assert r.status_code == 201 and r.json()["picture_kept"] is False

    out = export(server)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)["reports"]
    assert [(x["sha256"], x["says"], x["has_picture"]) for x in rows] == [
        (hashlib.sha256(with_pic).hexdigest(), "fake", True), (hashlib.sha256(without_pic).hexdigest(), "real", False)]
    assert rows[0]["note"] == "the ears are wrong" and rows[0]["image_url"] == "https://example.org/a.jpg"
    assert "10.1.0.1" not in out.stdout  # never who sent it


def test_export_writes_a_data_folder_that_training_reads(server, tmp_path):
    out = export(server, "--out", str(tmp_path / "reports"))
    assert out.returncode == 0, out.stderr
    assert "without_picture.csv" in out.stderr
    folder = tmp_path / "reports"
    with open(folder / "manifest.csv", newline="") as f:
        manifest = list(csv.DictReader(f))
    assert len(manifest) == 1 and manifest[0]["label"] == "fake" and manifest[0]["source"] == "user-reports"
    assert manifest[0]["note"] == "the ears are wrong" and manifest[0]["url"] == "https://example.org/a.jpg"
    assert (folder / manifest[0]["path"]).read_bytes() == picture(1)
    with open(folder / "without_picture.csv", newline="") as f:
        assert [r["says"] for r in csv.DictReader(f)] == ["real"]

    from training.data import load_dataset

    ds = load_dataset(folder, progress=False)
    assert [(s.label, s.source) for s in ds.samples] == [(1, "user-reports")]

    csv_out = export(server, "--format", "csv", "--out", str(tmp_path / "r.csv"))
    assert csv_out.returncode == 0, csv_out.stderr
    with open(tmp_path / "r.csv", newline="") as f:
        assert [r["says"] for r in csv.DictReader(f)] == ["fake", "real"]


@pytest.mark.parametrize("body, headers, status, code", [
    ("not json", {"Content-Type": "application/json"}, 400, "bad_report"),
    ("{}", {"Content-Type": "text/plain"}, 415, "unsupported_type"),
    ("[1, 2]", {"Content-Type": "application/json"}, 400, "bad_report"),
    (json.dumps({"says": "fake"}), {"Content-Type": "application/json"}, 400, "bad_report"),
    (json.dumps({"sha256": "0" * 64, "says": "maybe"}), {"Content-Type": "application/json"}, 400, "bad_report"),
    (json.dumps({"sha256": "0" * 64, "says": "real", "extra": 1}), {"Content-Type": "application/json"}, 400, "bad_report"),
    (json.dumps({"sha256": "0" * 64, "says": "real", "p_fake": 3}), {"Content-Type": "application/json"}, 400, "bad_report"),
    (json.dumps({"sha256": "0" * 64, "says": "real", "note": "x" * 5000}), {"Content-Type": "application/json"}, 400, "bad_report"),
    (json.dumps({"sha256": "0" * 64, "says": "real", "picture": "%%%"}), {"Content-Type": "application/json"}, 400, "bad_report"),
    (json.dumps({"sha256": "0" * 64, "says": "real", "picture": base64.b64encode(b"<html>hi</html>").decode()}),
     {"Content-Type": "application/json"}, 415, "unsupported_type"),
    (json.dumps({"sha256": "0" * 64, "says": "real", "picture": base64.b64encode(picture(3)).decode()}),
     {"Content-Type": "application/json"}, 400, "hash_mismatch"),
])
def test_a_malformed_report_is_refused_with_a_reason_and_loses_nothing(server, body, headers, status, code):
    r = server.post("/api/v1/feedback", data=body, headers={**as_client(next(CLIENTS)), **headers})
    assert r.status_code == status, r.text
    assert r.json()["error"] == code and r.json()["message"]
    out = export(server)
    assert [x["says"] for x in json.loads(out.stdout)["reports"]] == ["fake", "real"]  # the two kept above, no more


def test_a_picture_over_the_upload_limit_is_refused_before_it_is_read(server):
    huge = "A" * (2 * 2**20 * 4 // 3)
    r = server.post("/api/v1/feedback", data=json.dumps({"sha256": "0" * 64, "says": "real", "picture": huge}),
                    headers={**as_client(3), "Content-Type": "application/json"})
    assert r.status_code == 413, r.text


def test_reports_need_the_key_and_are_rate_limited(server):
    body = report(picture(4))
    assert server.post("/api/v1/feedback", json=body, headers=as_client(4, key=None)).json()["error"] == "unauthorized"
    assert server.post("/api/v1/feedback", json=body, headers=as_client(4, key="wrong")).status_code == 401
    statuses = [server.post("/api/v1/feedback", json=body, headers=as_client(5)).status_code for _ in range(LIMIT + 2)]
    assert statuses[:LIMIT] == [201] * LIMIT and statuses[-1] == 429


def test_export_says_what_is_wrong_with_its_arguments(server, tmp_path):
    r = subprocess.run(UNMASK + ["feedback", "export", "--db", str(tmp_path / "none.sqlite3")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "no reports at" in r.stderr
    r = subprocess.run(UNMASK + ["feedback", "export", "--db", "postgres://x/y"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "sqlite:///" in r.stderr
