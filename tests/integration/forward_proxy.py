"""A forward HTTP proxy on loopback, as a corporate egress proxy is one: clients send it
absolute-form requests (``POST http://host:port/ HTTP/1.1``), which it forwards to the host they
name, or ``CONNECT host:port`` for an ``https://`` endpoint, which it tunnels; it records what
it carried. ``names`` maps host names only the proxy can resolve to the addresses they stand
for, so an endpoint named that way is reachable through the proxy alone, as in a network with
no route out but the proxy. A host it cannot resolve that way is refused (502), never dialled:
no test reaches past loopback. ``auth`` (user, password) makes it require basic auth (407)."""

from __future__ import annotations

import base64
import http.client
import select
import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from urllib.parse import urlsplit

from tests.integration.fault_proxy import LoopbackServer, relay


class ForwardProxy:
    def __init__(self, names: dict[str, str], auth: tuple[str, str] | None = None) -> None:
        self.names = names
        self.carried: Counter[str] = Counter()  # by X-Amz-Target (or host, without one)
        self.tunnels: Counter[str] = Counter()  # CONNECT host:port, by the target named
        self.last_tunnel = ""
        self.refused: Counter[str] = Counter()  # 407 (no or wrong credentials), 502 (unknown)
        self._expected = (
            "Basic " + base64.b64encode(":".join(auth).encode()).decode() if auth else None
        )
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                if proxy._allowed(self):
                    proxy._forward(self)

            def do_CONNECT(self) -> None:
                if proxy._allowed(self):
                    proxy._tunnel(self)

            do_GET = do_PUT = do_HEAD = do_DELETE = do_POST

            def log_message(self, *args: object) -> None:
                pass

        self._server = LoopbackServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def url_with(self, user: str, password: str) -> str:
        return f"http://{user}:{password}@127.0.0.1:{self._server.server_address[1]}"

    def _allowed(self, request: BaseHTTPRequestHandler) -> bool:
        if self._expected is None or request.headers.get("Proxy-Authorization") == self._expected:
            return True
        with self._lock:
            self.refused["407"] += 1
        request.send_response(407)
        request.send_header("Proxy-Authenticate", 'Basic realm="table-sync test"')
        request.send_header("Content-Length", "0")
        request.end_headers()
        request.close_connection = True
        return False

    def _address(self, request: BaseHTTPRequestHandler, host: str) -> str | None:
        address = self.names.get(host)
        if address is None:
            with self._lock:
                self.refused[host] += 1
            request.send_error(502, "unknown host")
        return address

    def _forward(self, request: BaseHTTPRequestHandler) -> None:
        target = urlsplit(request.path)
        if not target.hostname:  # not a proxy request: refused, as a proxy refuses it
            request.send_error(400, "absolute-form request required")
            return
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else None
        host = self._address(request, target.hostname)
        if host is None:
            return
        with self._lock:
            self.carried[request.headers.get("X-Amz-Target") or target.hostname] += 1
        upstream = http.client.HTTPConnection(host, target.port or 80, timeout=30)
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in ("proxy-connection", "proxy-authorization")
        }
        path = target.path + (f"?{target.query}" if target.query else "")
        try:
            relay(request, upstream, path or "/", body, headers)
        finally:
            upstream.close()

    def _tunnel(self, request: BaseHTTPRequestHandler) -> None:
        host, _, port = request.path.rpartition(":")
        with self._lock:
            self.tunnels[request.path] += 1
            self.last_tunnel = request.path
        address = self._address(request, host)
        if address is None:
            return
        upstream = socket.create_connection((address, int(port)), timeout=30)
        request.send_response(200, "Connection established")
        request.end_headers()
        request.close_connection = True
        client = request.connection
        try:
            while True:
                readable, _, _ = select.select([client, upstream], [], [], 30)
                if not readable:
                    return
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is client else client).sendall(data)
        except OSError:
            return
        finally:
            upstream.close()

    def __enter__(self) -> ForwardProxy:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
