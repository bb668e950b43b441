"""The lean clients' connections (aws/lean.py): kept alive and shared between threads, as
botocore's pool shares them. A page's writes and digest reads run on threads made for that page
(concurrency.map_concurrently), so a connection that belonged to one thread was opened anew for
every page: on AWS, a TLS handshake per thread per page.

The endpoint is a local HTTP/1.1 server that counts the connections it accepts and answers
every request with an empty JSON object; nothing reaches AWS.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from botocore.config import Config

from table_sync.aws.lean import LeanJsonClient
from tests.unit.local_server import CountingHandler, CountingServer, serving


class _Counting(CountingServer):
    def __init__(self) -> None:
        super().__init__(_Handler)
        self.bodies: list[bytes] = []


class _Handler(CountingHandler):
    server: _Counting

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.server.lock:
            self.server.bodies.append(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Counting]:
    with serving(_Counting(), monkeypatch) as served:
        yield served


def _client() -> LeanJsonClient:
    session = boto3.Session(
        aws_access_key_id="AKIATESTPOOL", aws_secret_access_key="x", region_name="eu-west-1"
    )
    return LeanJsonClient(session, "kms", "eu-west-1", Config(retries={"mode": "standard"}))


def test_threads_made_one_after_another_reuse_one_connection(server: _Counting) -> None:
    client = _client()
    for _ in range(5):  # five pages, each with a pool of its own, one request each
        with ThreadPoolExecutor(1) as page_pool:
            assert page_pool.submit(client.call, "Decrypt", b"{}").result() == b"{}"
    assert server.connections == 1


def test_concurrent_requests_open_no_more_connections_than_are_in_flight(
    server: _Counting,
) -> None:
    client = _client()
    for _ in range(3):  # three pages of 4 concurrent requests, each page its own threads
        with ThreadPoolExecutor(4) as page_pool:
            results = list(page_pool.map(lambda _: client.call("Decrypt", b"{}"), range(40)))
        assert results == [b"{}"] * 40
    assert 1 <= server.connections <= 4
