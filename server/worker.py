"""gunicorn's threaded worker, with a deadline for reading each request.

gunicorn's `gthread` worker gives each connection a thread once its first byte arrives, and
then reads headers and body with no time limit: a client that sends one byte every few
seconds holds that thread for as long as it likes, and as many such clients as there are
threads stop the server answering anyone (health included). Here every request must arrive
within `UNMASK_READ_TIMEOUT` seconds, extended by one second for each `UNMASK_READ_MIN_RATE`
bytes received (the rule of Apache's mod_reqtimeout), so slow but honest uploads still get
through. A request that misses its deadline is answered 408 when its headers were read
(server/__init__.py), else its connection is closed.

In production a buffering reverse proxy sits in front (server/README.md): it receives the
whole request before gunicorn sees a byte, and this deadline is the second line.
"""
from __future__ import annotations

import logging
import time

from gunicorn.http.errors import NoMoreData
from gunicorn.workers.gthread import ThreadWorker

from server.config import gunicorn_settings

log = logging.getLogger("gunicorn.error")


class SlowRequest(NoMoreData, TimeoutError):
    """The client did not send its request in time. A TimeoutError, so that gunicorn's body
    drain stops on it; a NoMoreData, so that gunicorn closes the connection quietly when the
    headers themselves were too slow."""

    def __str__(self):
        return "the request did not arrive in time"


class DeadlineSocket:
    """A client socket whose reads share one deadline per request; everything else (send,
    fileno for the poller, close) goes to the socket itself."""

    def __init__(self, sock, timeout: float, min_rate: float):
        self._sock = sock
        self._timeout = timeout
        self._min_rate = min_rate
        self.deadline = None
        self._said = False

    def start_request(self) -> None:
        self.deadline = time.monotonic() + self._timeout
        self._said = False

    def __getattr__(self, name):
        return getattr(self._sock, name)

    def _late(self) -> SlowRequest:
        if not self._said:
            self._said = True
            log.info("a request did not arrive within its read deadline (%g s); refused", self._timeout)
        return SlowRequest()

    def _read(self, read, *args):
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise self._late()
        prior = self._sock.gettimeout()
        self._sock.settimeout(remaining if prior is None else min(prior, remaining))
        try:
            got = read(*args)
        except TimeoutError:
            if time.monotonic() >= self.deadline:
                raise self._late() from None
            raise
        finally:
            self._sock.settimeout(prior)
        n = got if isinstance(got, int) else len(got)
        if self._min_rate:
            self.deadline += n / self._min_rate
        return got

    def recv(self, *args):
        return self._read(self._sock.recv, *args)

    def recv_into(self, *args):
        return self._read(self._sock.recv_into, *args)


class DeadlineThreadWorker(ThreadWorker):
    def init_process(self):
        s = gunicorn_settings()
        self.read_timeout, self.read_min_rate = s["read_timeout"], s["read_min_rate"]
        super().init_process()

    def handle(self, conn):
        if not isinstance(conn.sock, DeadlineSocket):
            conn.sock = DeadlineSocket(conn.sock, self.read_timeout, self.read_min_rate)
        conn.sock.start_request()  # each request on a kept-alive connection gets its own
        return super().handle(conn)
