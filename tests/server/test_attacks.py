"""Attacks on a server without an API key, through HTTP against a real gunicorn: slow clients
holding every request thread, pages of other sites posting to the API or framing the page,
and the stored-uploads folder (two identical uploads at once, links planted in it).

One worker with THREADS threads, so that THREADS slow clients would hold all of it."""
from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.server.conftest import run_server, worker_pids
from tests.synthetic import encode, face_image

THREADS = 3
READ_TIMEOUT = 2  # seconds for a whole request; slow clients below send a byte every 0.3 s
SLOW_FOR = 60  # how long a slow client keeps going unless the server cuts it off
EXTENSION = "chrome-extension://kdmepkbpdjeiglledacpabjjbmcjmhgo"


@pytest.fixture(scope="module")
def server(tmp_path_factory, models_dir):
    root = tmp_path_factory.mktemp("attacks")
    with run_server(root, models_dir, workers=1, threads=THREADS, read_timeout=READ_TIMEOUT, cors_origins=EXTENSION,
                    upload_dir=root / "kept") as s:
        s.kept = root / "kept"
        yield s


def image(seed: int, size: int = 200) -> bytes:
    return encode(face_image("real", size, seed))


def form(data: bytes) -> dict:
    return {"file": ("face.jpg", data, "image/jpeg")}


class SlowClient(threading.Thread):
    """Sends `head` at once, then `rest` one byte every 0.3 s, until the server answers or
    closes the connection (or SLOW_FOR seconds pass); keeps what the server said."""

    def __init__(self, port: int, head: bytes, rest: bytes):
        super().__init__(daemon=True)
        self.port, self.head, self.rest = port, head, rest
        self.answer = b""
        self.cut_off = False

    def run(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(self.head)
            end = time.monotonic() + SLOW_FOR
            for byte in self.rest:
                if time.monotonic() > end:
                    return
                try:
                    s.sendall(bytes([byte]))
                    s.settimeout(0.3)
                    got = s.recv(65536)
                except socket.timeout:
                    continue
                except OSError:  # reset by the server
                    self.cut_off = True
                    return
                self.answer += got
                self.cut_off = True  # an answer, or the end of the connection
                s.settimeout(2)
                try:
                    while chunk := s.recv(65536):
                        self.answer += chunk
                except OSError:
                    pass
                return


def test_slow_clients_cannot_hold_every_thread(server):
    port = int(server.base.rsplit(":", 1)[1])
    body = b"x" * 50_000
    slow_body = [SlowClient(port, b"POST /api/v1/check HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                            + f"Content-Length: {len(body)}\r\n\r\n".encode(), body) for _ in range(THREADS - 1)]
    slow_headers = SlowClient(port, b"POST /api/v1/check HTTP/1.1\r\n", b"X-Padding: " + b"y" * 5000)
    clients = [*slow_body, slow_headers]
    for c in clients:
        c.start()
    time.sleep(1.0)  # every thread now reads from a slow client
    health = server.get("/api/v1/health", timeout=SLOW_FOR / 2)
    assert health.status_code == 200
    for c in clients:
        c.join(SLOW_FOR)
    assert all(c.cut_off for c in clients)
    for c in slow_body:  # headers read, body too slow: told why
        assert c.answer.startswith(b"HTTP/1.1 408"), c.answer[:200]
        assert b'"request_timeout"' in c.answer
    assert "did not arrive within its read deadline" in server.log()


def test_pages_of_other_sites_cannot_use_the_api(server):
    # What a browser sends for a no-cors multipart form POST from another site's page.
    for origin in ("https://evil.example", "null", f"{server.base}.evil.example", "http://127.0.0.1"):
        r = server.post("/api/v1/check", files=form(image(1)), headers={"Origin": origin})
        assert r.status_code == 403, (origin, r.text)
        assert r.json()["error"] == "origin_refused" and "UNMASK_CORS_ORIGINS" in r.json()["message"]
    for path in ("/api/v1/health", "/api/v1/models"):
        assert server.get(path, headers={"Origin": "https://evil.example"}).status_code == 403
    assert not server.kept.exists() or not any(server.kept.iterdir())  # nothing was processed
    # The server's own page, the listed extension, and clients that are not browsers.
    for headers in ({"Origin": server.base}, {"Origin": "https://elsewhere.example", "Sec-Fetch-Site": "same-origin"},
                    {"Origin": EXTENSION}, {}):
        r = server.post("/api/v1/check", files=form(image(2)), headers=headers)
        assert r.status_code == 200, (headers, r.text)


def test_nothing_can_be_framed_by_another_site(server):
    page = server.get("/")
    assert page.status_code == 200
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    for r in (page, server.get("/api/v1/health"), server.get("/api/v1/nothing")):
        assert r.headers["X-Frame-Options"] == "DENY"


def test_health_tells_no_worker_pid(server):
    h = server.get("/api/v1/health").json()
    assert h["status"] == "ok" and h["model"]["name"] == "ensemble"  # no key configured: the details are public
    text = json.dumps(h)
    assert "pid" not in text and not any(re.search(rf"\b{pid}\b", text) for pid in worker_pids(server))


def big_face_png(seed: int) -> bytes:
    """A face photo as a PNG of about 2 MB (grain that does not compress): a write to disk
    long enough for two requests storing it to overlap."""
    rng = np.random.default_rng(seed)
    face = face_image("real", 900, seed).astype(np.int16) + rng.integers(-6, 7, (900, 900, 3))
    return encode(np.clip(face, 0, 255).astype(np.uint8), "PNG")


def test_identical_uploads_at_once_are_all_answered_and_kept_once(server):
    # The face makes every request wait for the same model batch, so they reach the store together.
    for round_ in range(4):
        data = big_face_png(100 + round_)
        with ThreadPoolExecutor(THREADS * 2) as pool:
            codes = list(pool.map(lambda _: server.post("/api/v1/check", files={"file": ("face.png", data, "image/png")}).status_code,
                                  range(THREADS * 2)))
        assert codes == [200] * (THREADS * 2), codes
        kept = server.kept / f"{hashlib.sha256(data).hexdigest()}.png"
        assert kept.read_bytes() == data
    assert not [p.name for p in server.kept.iterdir() if p.name.endswith(".part")]


def test_links_planted_in_the_upload_folder_are_not_followed(server, tmp_path):
    data = image(200)
    name = f"{hashlib.sha256(data).hexdigest()}.jpg"
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    server.kept.mkdir(exist_ok=True)
    # Where the file and its verdict go, and the temporary names a worker used to write through.
    (server.kept / f"{name}.json").symlink_to(victim)
    for pid in worker_pids(server):
        (server.kept / f"{name}.{pid}.part").symlink_to(victim)
    r = server.post("/api/v1/check", files=form(data))
    assert r.status_code == 200 and r.json()["stored"] is True
    assert victim.read_text() == "keep me"
    kept = server.kept / name
    assert not kept.is_symlink() and kept.read_bytes() == data
    assert not (server.kept / f"{name}.json").is_symlink() and json.loads((server.kept / f"{name}.json").read_text())["verdict"]
    for link in server.kept.glob(f"{name}.*.part"):
        os.unlink(link)
