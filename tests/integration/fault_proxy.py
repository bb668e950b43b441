"""A fault-injecting HTTP proxy in front of the moto server (moto has no throttling).

Every request is forwarded to moto unchanged, except that every ``every``-th request for a
chosen operation (by X-Amz-Target) is answered, without reaching moto, with the throttling
error AWS would send. botocore sees real HTTP 400 throttling responses and retries them.
An error of :data:`DAMAGED` instead answers 200 with an HTML page (what a captive or broken
proxy sends): a damaged response, which nothing real in moto can produce.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import struct
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlparse

THROTTLES = {
    "TrentService.Decrypt": "ThrottlingException",
    "DynamoDB_20120810.Scan": "ProvisionedThroughputExceededException",
    "DynamoDB_20120810.BatchWriteItem": "ProvisionedThroughputExceededException",
}


class LoopbackServer(ThreadingHTTPServer):
    """socketserver's backlog is 5: a client that opens many connections at once (awscrt does)
    would see a SYN dropped and sent again a second later."""

    request_queue_size = 128
    daemon_threads = True


DAMAGED = "damaged"
DAMAGED_PAGE = b"<html><body><h1>502 Bad Gateway</h1></body></html>"


def relay(
    request: BaseHTTPRequestHandler,
    upstream: http.client.HTTPConnection,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
    replace: dict[str, str] | None = None,
) -> None:
    """Send ``request`` on to ``upstream`` and its response back, read in full (its length
    given, whatever framing the upstream used); ``replace``: response headers to send instead
    of the upstream's (by lower-case name)."""
    upstream.request(request.command, path, body=body, headers=headers)
    response = upstream.getresponse()
    data = response.read()
    request.send_response(response.status)
    replace = replace or {}
    for name, value in response.getheaders():
        if name.lower() not in ("transfer-encoding", "connection", "content-length", *replace):
            request.send_header(name, value)
    for name, value in replace.items():
        request.send_header(name, value)
    request.send_header("Content-Length", str(len(data)))
    request.end_headers()
    request.wfile.write(data)


# Transport faults, as a network or a failing server makes them (moto makes none of them):
FAULTS = {
    "reset": "the connection reset (RST) before any response",
    "close": "the connection closed (FIN) before any response",
    "truncate": "the whole Content-Length promised, half the body sent, the connection closed",
    "silent": "no answer for SILENT seconds (past the client's read timeout), then closed",
    "crc": "the response relayed whole, with an x-amz-crc32 that does not match it",
}
SILENT = 2.0


def _inject(request: BaseHTTPRequestHandler, fault: str) -> None:
    request.close_connection = True
    if fault == "reset":
        request.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    elif fault == "truncate":
        data = json.dumps({"message": "x" * 200}).encode()
        request.send_response(200)
        request.send_header("Content-Type", "application/x-amz-json-1.1")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data[: len(data) // 2])
    elif fault == "silent":
        time.sleep(SILENT)


class FaultProxy:
    def __init__(
        self,
        upstream: str,
        every: int = 3,
        targets: frozenset[str] | None = None,
        errors: dict[str, str] | None = None,
        keep_host: bool = False,
        tls: ssl.SSLContext | None = None,
        max_in_a_row: int | None = None,
        fault: str | None = None,
    ) -> None:
        """``errors`` replaces the throttling error of a target with another AWS error code.
        ``keep_host`` forwards the Host header as signed, so moto's signature check (IAM
        enforcement) passes through the proxy (not for S3, which moto routes by Host). ``tls``
        serves HTTPS with that server context (moto behind it stays plain HTTP).
        ``max_in_a_row`` passes a request on after it was refused that many times in a row
        (by its body): threads that take turns in step with ``every`` would otherwise see one
        request refused on every attempt, which is no throttling AWS does. ``fault`` injects a
        transport fault instead of an error response (:data:`FAULTS`)."""
        self._upstream = urlparse(upstream)
        self._targets = targets if targets is not None else frozenset(THROTTLES)
        self._errors = {**THROTTLES, **(errors or {})}
        self.every = every
        self.seen: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        # Access key ids seen per target: which credentials signed the requests.
        self.access_keys: dict[str, set[str]] = {}
        self._keep_host = keep_host
        self._fault = fault
        self._max_in_a_row = max_in_a_row
        self._streaks: Counter[bytes] = Counter()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return None

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                target = self.headers.get("X-Amz-Target", "")
                credential = self.headers.get("Authorization", "").partition("Credential=")[2]
                with proxy._lock:
                    proxy.access_keys.setdefault(target, set()).add(credential.split("/")[0])
                injected = target in proxy._targets and proxy._should_throttle(target, body)
                if injected and proxy._fault is not None and proxy._fault != "crc":
                    _inject(self, proxy._fault)
                    return
                if injected and proxy._fault is None:
                    damaged = proxy._errors[target] == DAMAGED
                    payload = (
                        DAMAGED_PAGE
                        if damaged
                        else json.dumps(
                            {"__type": proxy._errors[target], "message": "injected by the proxy"}
                        ).encode()
                    )
                    self.send_response(200 if damaged else 400)
                    self.send_header(
                        "Content-Type", "text/html" if damaged else "application/x-amz-json-1.1"
                    )
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection(
                    proxy._upstream.hostname, proxy._upstream.port, timeout=60
                )
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                headers["Host"] = (
                    self.headers["Host"]
                    if proxy._keep_host
                    else f"{proxy._upstream.hostname}:{proxy._upstream.port}"
                )
                replace = {"x-amz-crc32": "1"} if injected else None  # the "crc" fault
                try:
                    relay(self, conn, self.path, body or None, headers, replace)
                finally:
                    conn.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

        self._server = LoopbackServer(("127.0.0.1", 0), Handler)
        self._scheme = "https" if tls else "http"
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _should_throttle(self, target: str, body: bytes) -> bool:
        with self._lock:
            self.seen[target] += 1
            limit = self._max_in_a_row
            if self.seen[target] % self.every == 0 and (
                limit is None or self._streaks[body] < limit
            ):
                self.injected[target] += 1
                if limit is not None:
                    self._streaks[body] += 1
                return True
            self._streaks.pop(body, None)
            return False

    @property
    def endpoint(self) -> str:
        return f"{self._scheme}://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
