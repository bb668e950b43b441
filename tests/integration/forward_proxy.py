"""A forward HTTP proxy on loopback, as a corporate egress proxy is one: clients send it
absolute-form requests (``POST http://host:port/ HTTP/1.1``), it forwards each to the host it
names and records what it carried. ``names`` maps host names only the proxy can resolve to
the addresses they stand for, so an endpoint named that way is reachable through the proxy
alone, as in a network with no route out but the proxy."""

from __future__ import annotations

import http.client
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

from tests.integration.fault_proxy import relay


class ForwardProxy:
    def __init__(self, names: dict[str, str]) -> None:
        self.names = names
        self.carried: Counter[str] = Counter()  # by X-Amz-Target (or host, without one)
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                proxy._forward(self)

            do_GET = do_PUT = do_HEAD = do_DELETE = do_POST

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def _forward(self, request: BaseHTTPRequestHandler) -> None:
        target = urlsplit(request.path)
        if not target.hostname:  # not a proxy request: refused, as a proxy refuses it
            request.send_error(400, "absolute-form request required")
            return
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else None
        with self._lock:
            self.carried[request.headers.get("X-Amz-Target") or target.hostname] += 1
        host = self.names.get(target.hostname, target.hostname)
        upstream = http.client.HTTPConnection(host, target.port or 80, timeout=30)
        headers = {k: v for k, v in request.headers.items() if k.lower() != "proxy-connection"}
        path = target.path + (f"?{target.query}" if target.query else "")
        try:
            relay(request, upstream, path or "/", body, headers)
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
