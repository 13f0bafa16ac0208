"""`unmask data fetch`, offline: a local HTTP server the test starts serves a few origin files
that the test makes, laid out as GitHub serves a repository at a commit."""
from __future__ import annotations

import csv
import hashlib
import http.server
import io
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from tests.synthetic import encode, face_image

REPO = Path(__file__).resolve().parents[2]
FACES_V1 = REPO.parent / "shared" / "data" / "faces-v1"


def card_normalised(data: bytes) -> bytes:
    """The data card's steps, written out here independently of training/fetch.py."""
    img = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    w, h = img.size
    s = min(w, h)
    img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)).resize((256, 256), Image.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture()
def origins(tmp_path):
    """A local server over tmp/www, the requests it answered, and a manifest of five rows:
    two good images (one wide PNG, one tall JPEG), one whose recorded hash is wrong, one
    corrupt file and one the server does not have."""
    www = tmp_path / "www" / "someone" / "faces" / "abc123"
    files = {
        "imgs/wide one.png": encode(np.concatenate([face_image("real", 200, 1)] * 2, axis=1), "PNG"),
        "imgs/tall.jpg": encode(np.concatenate([face_image("fake", 180, 2)] * 2, axis=0)),
        "imgs/other.jpg": encode(face_image("real", 300, 3)),
        "imgs/corrupt.jpg": b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4,
    }
    for rel, data in files.items():
        (www / rel).parent.mkdir(parents=True, exist_ok=True)
        (www / rel).write_bytes(data)
    asked = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(tmp_path / "www"), **kw)

        def do_GET(self):
            asked.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    rows = [
        ("alpha/real/a.jpg", "real", "imgs/wide one.png", hashlib.sha256(card_normalised(files["imgs/wide one.png"])).hexdigest()),
        ("alpha/fake/b.jpg", "fake", "imgs/tall.jpg", hashlib.sha256(card_normalised(files["imgs/tall.jpg"])).hexdigest()),
        ("beta/real/c.jpg", "real", "imgs/other.jpg", "0" * 64),
        ("beta/fake/d.jpg", "fake", "imgs/corrupt.jpg", "1" * 64),
        ("beta/fake/e.jpg", "fake", "imgs/gone.jpg", "2" * 64),
    ]
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "source", "group", "origin", "generator", "licence", "sha256"])
        for path, label, origin, digest in rows:
            w.writerow([path, label, path.split("/")[0], path, f"someone/faces@abc123:{origin}", "", "test", digest])
    yield {"manifest": manifest, "url": f"http://127.0.0.1:{server.server_address[1]}/{{repository}}/{{commit}}/{{path}}",
           "asked": asked, "files": files}
    server.shutdown()


def fetch_cli(origins, out, *extra):
    from training.commands import main

    return main(["data", "fetch", "--out", str(out), "--manifest", str(origins["manifest"]),
                 "--origin-url", origins["url"], "--workers", "2", "--quiet", *extra])


def test_fetch_normalises_checks_each_hash_and_reports_the_rest(origins, tmp_path, capsys):
    out = tmp_path / "data"
    assert fetch_cli(origins, out) == 1  # not everything arrived as recorded
    err = capsys.readouterr().err
    assert "2 of 5 images" in err and "3 problem(s)" in err
    for rel, origin in (("alpha/real/a.jpg", "imgs/wide one.png"), ("alpha/fake/b.jpg", "imgs/tall.jpg")):
        assert (out / rel).read_bytes() == card_normalised(origins["files"][origin])
        assert Image.open(out / rel).size == (256, 256)
    assert not (out / "beta").exists()  # a wrong hash, a corrupt file and a missing one leave nothing behind
    problems = {r["path"]: r["reason"] for r in csv.DictReader(open(out / "fetch-problems.csv"))}
    assert problems == {"beta/real/c.jpg": "different", "beta/fake/d.jpg": "not_an_image", "beta/fake/e.jpg": "http_error"}
    assert (out / "manifest.csv").read_bytes() == origins["manifest"].read_bytes()
    assert "/someone/faces/abc123/imgs/wide%20one.png" in origins["asked"]  # the origin's path, quoted

    # Again: the two good files are kept without asking the server; --keep-different keeps the third.
    origins["asked"].clear()
    assert fetch_cli(origins, out, "--keep-different", "--only", "alpha,beta") == 1
    assert not any("wide" in a or "tall" in a for a in origins["asked"])
    assert (out / "beta/real/c.jpg").read_bytes() == card_normalised(origins["files"]["imgs/other.jpg"])
    assert not list(out.rglob("*.part"))


def test_only_one_source_and_bad_manifests(origins, tmp_path, capsys):
    out = tmp_path / "data"
    assert fetch_cli(origins, out, "--only", "alpha") == 0
    assert "2 of 2 images" in capsys.readouterr().err and not (out / "fetch-problems.csv").exists()
    assert fetch_cli(origins, out, "--only", "gamma") == 2
    assert "no source gamma" in capsys.readouterr().err

    bad = tmp_path / "bad.csv"
    bad.write_text("path,origin,sha256\n../../etc/x.jpg,someone/faces@abc:x.jpg," + "0" * 64 + "\n")
    from training.commands import main

    assert main(["data", "fetch", "--out", str(out), "--manifest", str(bad), "--quiet"]) == 2
    assert "leaves the data folder" in capsys.readouterr().err


def test_the_shipped_manifest_names_an_origin_and_a_hash_for_every_image():
    from training.fetch import FACES_V1 as SHIPPED, parse_origin, read_manifest

    rows = read_manifest(SHIPPED / "manifest.csv")
    assert len(rows) == 10132
    hashes = {}
    for r in rows:  # faces-v1 lists 7 files twice; each time with the same hash
        assert hashes.setdefault(r["path"], r["sha256"]) == r["sha256"], r["path"]
    for r in rows:
        repository, commit, path = parse_origin(r["origin"])
        assert len(r["sha256"]) == 64 and commit and path
    if FACES_V1.is_dir():  # a developer checkout beside ../shared: the hashes are those of the local copy
        for r in rows[:: len(rows) // 25]:
            assert hashlib.sha256((FACES_V1 / r["path"]).read_bytes()).hexdigest() == r["sha256"], r["path"]
