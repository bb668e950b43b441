"""The lean clients' HTTP: awscrt's HTTP/1.1 client (AWS's native one, as the AWS CLI v2 and
the CRT transfer manager use it: its own event loop, TLS, proxies and framing), given what
botocore's transport takes from the same session and config:

* **TLS**: certificates verified against ``AWS_CA_BUNDLE`` (or the profile's ``ca_bundle``),
  else botocore's own bundle;
* **proxies**: the config's ``proxies``, else HTTP(S)_PROXY unless NO_PROXY exempts the host
  (botocore's own functions decide); a proxy's basic auth from its URL, an ``https://`` proxy's
  CA bundle and client certificate from ``proxies_config``; an ``https://`` endpoint is
  tunnelled (CONNECT), a plain one forwarded;
* **timeouts**: the config's connect timeout for a connection (proxy and TLS included); its
  read timeout for a response that goes that long without a byte (see :meth:`Exchange.idle`);
* **connections**: kept alive per origin and shared by all threads, up to the config's
  ``max_pool_connections`` kept idle;
* **faults**: a failed exchange completes as the botocore error its transport raises for the
  same fault (so its retry rules apply); a request that failed on a kept-alive connection
  before any of its response arrived is sent once more at once on a new one, as a stale
  pooled connection is.

Every callback here runs on awscrt's event loop thread; each exchange's outcome reaches its
caller once, through ``on_done``.
"""

from __future__ import annotations

import functools
import io
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

import boto3
import botocore.httpsession
from awscrt import io as crt_io
from awscrt.exceptions import AwsCrtError
from awscrt.http import (
    HttpClientConnection,
    HttpProxyAuthenticationType,
    HttpProxyConnectionType,
    HttpProxyOptions,
    HttpRequest,
)
from botocore.config import Config
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ProxyConnectionError,
    ReadTimeoutError,
    SSLError,
)
from botocore.utils import get_environ_proxies


@functools.cache
def _bootstrap() -> crt_io.ClientBootstrap:
    """One event loop thread for every lean client of the process: a segment's requests wait
    on the network, not on CPU, and one thread keeps their callbacks from taking turns on the
    GIL."""
    loop = crt_io.EventLoopGroup(1)
    return crt_io.ClientBootstrap(loop, crt_io.DefaultHostResolver(loop))


class Origin(NamedTuple):
    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> Origin:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname or "", port)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]  # by lower-case name
    body: bytes


Outcome = Response | Exception


class Unsupported(ValueError):
    """A setting of botocore's transport this one cannot honour (the client stays botocore's)."""


def proxy_url(config: Config, url: str) -> str | None:
    """The proxy botocore sends ``url``'s requests through: the config's ``proxies``, else
    HTTPS_PROXY / HTTP_PROXY unless NO_PROXY exempts the host (None: none)."""
    proxies = getattr(config, "proxies", None) or get_environ_proxies(url)
    found: str | None = botocore.httpsession.ProxyConfiguration(proxies=proxies).proxy_url_for(url)
    return found


class CrtTransport:
    """Requests to one service's endpoints, as botocore's transport would send them."""

    def __init__(self, session: boto3.Session, config: Config, endpoint_url: str) -> None:
        self._config = config
        self._settings: dict[str, Any] = dict(getattr(config, "proxies_config", None) or {})
        if self._settings.get("proxy_use_forwarding_for_https") and proxy_url(config, endpoint_url):
            # awscrt forwards plain HTTP only; an https:// request through a forwarding proxy
            # is left to botocore's transport.
            raise Unsupported("proxy_use_forwarding_for_https")
        bundle = session._session.get_config_variable("ca_bundle")
        self._tls = _tls_context(bundle or botocore.httpsession.get_cert_path(True))
        self._socket = crt_io.SocketOptions()
        self._socket.connect_timeout_ms = int(1000 * float(getattr(config, "connect_timeout", 60)))
        self.read_timeout = float(getattr(config, "read_timeout", 60))
        self._max_idle = int(getattr(config, "max_pool_connections", 10))
        self._idle: dict[Origin, list[HttpClientConnection]] = {}
        self._proxies: dict[Origin, HttpProxyOptions | None] = {}
        self._lock = threading.Lock()

    def send(
        self, origin: Origin, request: HttpRequest, body: bytes, on_done: Callable[[Outcome], None]
    ) -> Exchange:
        """Send ``request`` (its body ``body``) to ``origin``; ``on_done`` gets the outcome once
        (on awscrt's event loop thread, or on this one for a connection refused at once)."""
        exchange = Exchange(self, origin, request, body, on_done)
        exchange.start(fresh=False)
        return exchange

    # -- connections -------------------------------------------------------------------------

    def _take(self, origin: Origin) -> HttpClientConnection | None:
        with self._lock:
            idle = self._idle.get(origin, [])
            while idle:
                connection = idle.pop()
                if connection.is_open():
                    return connection
        return None

    def _release(self, origin: Origin, connection: HttpClientConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if connection.is_open() and len(idle) < self._max_idle:
                idle.append(connection)
                return
        connection.close()

    def _connect(self, origin: Origin) -> Any:
        """A future of a new connection to ``origin`` (through its proxy, if any)."""
        tls = None
        if origin.scheme == "https":
            tls = crt_io.TlsConnectionOptions(self._tls)
            tls.set_server_name(origin.host)
        return HttpClientConnection.new(
            origin.host,
            origin.port,
            bootstrap=_bootstrap(),
            socket_options=self._socket,
            tls_connection_options=tls,
            proxy_options=self._proxy(origin),
        )

    def _proxy(self, origin: Origin) -> HttpProxyOptions | None:
        with self._lock:
            if origin not in self._proxies:
                found = proxy_url(self._config, origin.url)
                self._proxies[origin] = _proxy_options(found, self._settings) if found else None
            return self._proxies[origin]


class Exchange:
    """One request and its response, on a kept-alive connection or a new one."""

    def __init__(
        self,
        transport: CrtTransport,
        origin: Origin,
        request: HttpRequest,
        body: bytes,
        on_done: Callable[[Outcome], None],
    ) -> None:
        self._transport = transport
        self._origin = origin
        self._url = origin.url
        self._request_message = request
        self._body = body
        self._on_done: Callable[[Outcome], None] | None = on_done
        self._lock = threading.Lock()
        self._connection: HttpClientConnection | None = None
        self._status = 0
        self._response_headers: dict[str, str] = {}
        self._chunks: list[bytes] = []
        self._answered = False  # any of the response arrived
        self._sent = False
        self._reused = False  # the connection was kept alive from an earlier exchange
        self.last_activity = time.monotonic()

    def idle(self, now: float) -> bool:
        """Whether the response has gone the read timeout without a byte (the exchange is then
        given up: a ReadTimeoutError, as a blocking read's timeout gives it up)."""
        if now - self.last_activity < self._transport.read_timeout:
            return False
        self._finish(ReadTimeoutError(endpoint_url=self._url, error="Read timed out."))
        return True

    def abandon(self) -> None:
        """No outcome is wanted any more: its connection is closed, its callback not called."""
        self._on_done = None
        _close(self._detach())

    def start(self, *, fresh: bool) -> None:
        connection = None if fresh else self._transport._take(self._origin)
        if connection is not None:
            self._request(connection, reused=True)
            return
        try:
            future = self._transport._connect(self._origin)
        except (AwsCrtError, ValueError) as exc:  # e.g. a TLS option awscrt refuses
            self._finish(_connect_error(exc, self._url))
            return
        future.add_done_callback(self._connected)

    def _connected(self, future: Any) -> None:
        try:
            connection = future.result()
        except Exception as exc:  # awscrt's connect failures, mapped below
            self._finish(_connect_error(exc, self._url))
            return
        self._request(connection, reused=False)

    def _request(self, connection: HttpClientConnection, *, reused: bool) -> None:
        with self._lock:
            if self._on_done is None:  # given up while connecting
                connection.close()
                return
            self._connection = connection
        request = self._request_message
        if self._sent or request.body_stream is None:
            # From its start on a resend (the signer's read of the body seeks back to it).
            request.body_stream = io.BytesIO(self._body)
        self._sent = True
        try:
            stream = connection.request(request, self._on_response, self._on_body)
            self._reused = reused
            stream.completion_future.add_done_callback(self._completed)
            stream.activate()
        except Exception as exc:  # a connection closed since it was pooled
            self._failed(exc, reused)

    def _on_response(self, status_code: int, headers: list[tuple[str, str]], **_: Any) -> None:
        self._answered = True
        self.last_activity = time.monotonic()
        self._status = status_code
        self._response_headers = {name.lower(): value for name, value in headers}

    def _on_body(self, chunk: bytes, **_: Any) -> None:
        self.last_activity = time.monotonic()
        self._chunks.append(bytes(chunk))

    def _completed(self, future: Any) -> None:
        error = future.exception()
        if error is not None:
            self._failed(error, self._reused)
            return
        connection = self._connection
        with self._lock:
            if self._on_done is None:
                return
            self._connection = None
        if connection is not None:
            self._transport._release(self._origin, connection)
        body = b"".join(self._chunks)
        self._finish(Response(self._status, self._response_headers, body))

    def _failed(self, error: Exception, reused: bool) -> None:
        if reused and not self._answered and self._on_done is not None and _closed(error):
            # A kept-alive connection the server had closed: sent again at once on a new one,
            # not as a retry (the request never reached a live connection).
            _close(self._detach())
            self.start(fresh=True)
            return
        self._finish(_exchange_error(error, self._url))

    def _detach(self) -> HttpClientConnection | None:
        with self._lock:
            connection, self._connection = self._connection, None
        return connection

    def _finish(self, outcome: Outcome) -> None:
        with self._lock:
            on_done, self._on_done = self._on_done, None
            connection, self._connection = self._connection, None
        if on_done is None:
            return
        if isinstance(outcome, Exception):
            _close(connection)  # a failed exchange's connection is never used again
        on_done(outcome)


def _close(connection: HttpClientConnection | None) -> None:
    if connection is not None:
        connection.close()


def _closed(error: Exception) -> bool:
    name = getattr(error, "name", "")
    return name in ("AWS_ERROR_HTTP_CONNECTION_CLOSED", "AWS_IO_SOCKET_CLOSED") or (
        isinstance(error, ConnectionError)
    )


def _tls(error: BaseException) -> bool:
    return "_TLS_" in getattr(error, "name", "") or "_TLS_" in str(error)


def _connect_error(error: Exception, url: str) -> Exception:
    """The botocore error for a connection that could not be made."""
    name = getattr(error, "name", "")
    if name in ("AWS_IO_SOCKET_TIMEOUT", "AWS_IO_TLS_NEGOTIATION_TIMEOUT"):
        return ConnectTimeoutError(endpoint_url=url, error=error)
    # A certificate that fails verification: s2n (awscrt's TLS) reports it only after its
    # blinding delay, 10-30 s, a defence against timing attacks that Python cannot turn off.
    if _tls(error):
        return SSLError(endpoint_url=url, error=error)
    if "PROXY" in name:
        return ProxyConnectionError(proxy_url="(the configured proxy)", error=error)
    return EndpointConnectionError(endpoint_url=url, error=error)


def _exchange_error(error: Exception, url: str) -> Exception:
    """The botocore error for an exchange that failed once its connection was made."""
    if _tls(error):
        return SSLError(endpoint_url=url, error=error)
    return ConnectionClosedError(endpoint_url=url, error=error)


def _tls_context(bundle: str | None, cert: Any = None) -> crt_io.ClientTlsContext:
    """A client TLS context verifying against ``bundle`` (with a client certificate: a path,
    or a (certificate, key) pair of paths, as botocore's ``proxy_client_cert`` takes it)."""
    if isinstance(cert, (tuple, list)):
        options = crt_io.TlsContextOptions.create_client_with_mtls_from_path(*cert)
    elif cert:
        options = crt_io.TlsContextOptions.create_client_with_mtls_from_path(cert, cert)
    else:
        options = crt_io.TlsContextOptions()
    if bundle:
        options.override_default_trust_store_from_path(None, bundle)
    return crt_io.ClientTlsContext(options)


def _proxy_options(url: str, settings: dict[str, Any]) -> HttpProxyOptions:
    """awscrt's options for the proxy at ``url``: basic auth from its user information, TLS to
    an ``https://`` proxy (``proxy_ca_bundle``, ``proxy_client_cert``), and the endpoint's
    scheme deciding tunnelling (https) or forwarding (http), as botocore decides."""
    parts = urlsplit(url)
    https = parts.scheme == "https"
    tls = None
    if https:
        bundle = settings.get("proxy_ca_bundle") or botocore.httpsession.get_cert_path(True)
        tls = crt_io.TlsConnectionOptions(_tls_context(bundle, settings.get("proxy_client_cert")))
        tls.set_server_name(parts.hostname or "")
    auth = {}
    if parts.username:
        auth = {
            "auth_type": HttpProxyAuthenticationType.Basic,
            "auth_username": unquote(parts.username),
            "auth_password": unquote(parts.password or ""),
        }
    return HttpProxyOptions(
        parts.hostname or "",
        parts.port or (443 if https else 80),
        tls_connection_options=tls,
        connection_type=HttpProxyConnectionType.Legacy,
        **auth,
    )
