"""A local HTTP/1.1 server for the lean clients' tests, as their endpoint (AWS_ENDPOINT_URL):
it counts the connections it accepts and logs nothing; each test's handler answers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar

import pytest


class CountingServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog is 5: a client that opens more connections at once (as
    # awscrt does) would have a SYN dropped and resent a second later.
    request_queue_size = 128

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.lock = threading.Lock()
        self.connections = 0


class CountingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: CountingServer

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def log_message(self, *args: object) -> None:
        pass


S = TypeVar("S", bound=CountingServer)


@contextmanager
def serving(server: S, monkeypatch: pytest.MonkeyPatch) -> Iterator[S]:
    """``server`` answering on a thread of its own, as every client's endpoint, until the end."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.server_address[1]}")
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
