"""AWS JSON-protocol calls without botocore's per-call machinery: the hot loop's clients.

A call through a botocore client costs about a millisecond of CPU, most of it the client's own
(serialising by walking the operation's shapes, its event system, SigV4 in Python, urllib3):
see bench/. :class:`LeanJsonClient` sends the same requests with AWS's own parts and the
standard library, for the few operations a sync makes once per ciphertext or per batch (KMS
Decrypt, kms_lean.py; DynamoDB Scan, BatchWriteItem and BatchGetItem, dynamodb_lean.py):

* **endpoint, TLS, timeouts**: the endpoint is the one a botocore client made from the same
  session, region and config resolves (``AWS_ENDPOINT_URL`` and the service's own variable
  honoured); certificates are verified against ``AWS_CA_BUNDLE`` (or the profile's
  ``ca_bundle``), else botocore's own bundle; the config's connect and read timeouts apply;
  kept-alive connections are shared by all threads (up to the config's
  ``max_pool_connections`` kept idle), as botocore's pool shares them: a page's writes run on
  threads made for that page, and a connection per thread would be a new TLS handshake per
  thread per page.
* **signing**: awscrt's SigV4 signer (the AWS Common Runtime, boto3's optional native
  dependency), each request signed for the moment it is sent, with the session's credentials
  read on every request, so an assumed role's refresh (botocore's refreshable credentials) is
  picked up mid-run.
* **retries**: botocore's standard retry mode, its own objects (``StandardRetryConditions``,
  ``ExponentialBackoff`` with full jitter and the service's base, the retry quota), so the same
  codes are retried (throttling, transient errors, DynamoDB's CRC32 mismatch), as many times
  as the botocore client made from the same config would.
* **many at once**: ``call_many`` keeps many calls in flight from one thread (``selectors``
  over kept-alive connections), each made, retried and judged as ``call`` makes it; a
  segment's Decrypts go this way (see KmsDecrypter.prefetched).
* **errors**: a failed call raises what the botocore client would: ``ClientError`` with the
  response botocore's own JSON parser makes of the error body, or botocore's connection error
  classes; so callers see the same codes either way.
"""

from __future__ import annotations

import hashlib
import heapq
import http.client
import selectors
import socket
import ssl
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

import boto3
import botocore.httpsession
from awscrt.auth import (
    AwsCredentialsProvider,
    AwsSignatureType,
    AwsSigningAlgorithm,
    AwsSigningConfig,
    aws_sign_request,
)
from awscrt.http import HttpHeaders, HttpRequest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
    SSLError,
)
from botocore.model import OperationModel
from botocore.parsers import create_parser
from botocore.retries import quota, standard

# The connection failed after the request may have been sent: a kept-alive connection the
# server had closed. Only the idempotent operations are sent here, so the request is sent again
# at once on a new connection.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
# What a failed exchange raises: a refused or reset connection (OSError), and a response cut
# short or malformed (http.client's IncompleteRead, BadStatusLine..., HTTPException and not
# OSError), which botocore retries as ConnectionClosedError.
_EXCHANGE_FAULTS = (OSError, http.client.HTTPException)
CRC32_HEADER = "x-amz-crc32"


class LeanJsonClient:
    """``call(operation, body)``: one operation of a JSON-protocol service, its request body
    serialised by the caller (as botocore would), its successful response body returned raw."""

    def __init__(
        self,
        session: boto3.Session,
        service: str,
        region: str | None,
        config: Config,
        *,
        botocore_client: Any = None,
    ) -> None:
        client = botocore_client or session.client(  # type: ignore[call-overload]
            service, region_name=region, config=config
        )
        self.botocore_client = client
        model = client.meta.service_model
        self.region: str = client.meta.region_name
        self.endpoint_url: str = client.meta.endpoint_url
        url = urlsplit(self.endpoint_url)
        self._https = url.scheme == "https"
        self._host = url.hostname or ""
        self._port = url.port or (443 if self._https else 80)
        self._host_header = url.netloc
        self._path = url.path or "/"
        self._service_model = model
        self._signing_name: str = model.signing_name
        self._target_prefix: str = model.metadata["targetPrefix"]
        self._content_type = f"application/x-amz-json-{model.metadata['jsonVersion']}"
        resolved = client.meta.config  # the config with botocore's defaults filled in
        max_attempts = _max_attempts(resolved, model.service_id.hyphenize())
        self._connect_timeout = float(getattr(resolved, "connect_timeout", 60))
        self._read_timeout = float(getattr(resolved, "read_timeout", 60))
        credentials = session.get_credentials()
        if credentials is None:
            raise ValueError(f"the {service} session has no credentials")
        self._credentials = credentials
        agent = getattr(resolved, "user_agent", None) or "botocore"
        self._user_agent = f"{agent} table-sync-lean"
        self._tls = self._tls_context(session) if self._https else None
        self._local = threading.local()
        self._idle: list[_Connection] = []  # kept alive, not in use
        self._idle_lock = threading.Lock()
        self._max_idle = int(getattr(resolved, "max_pool_connections", 10))
        self._operations: dict[str, OperationModel] = {}
        self._parser = create_parser("json")
        detector = standard.ThrottlingErrorDetector(standard.RetryEventAdapter())
        self._detector = detector
        self._policy = standard.RetryPolicy(
            retry_checker=standard.StandardRetryConditions(max_attempts=max_attempts),
            retry_backoff=standard.ExponentialBackoff(
                service_name=model.service_id.hyphenize(), throttling_detector=detector
            ),
        )
        self._quota = standard.RetryQuotaChecker(quota.RetryQuota(), detector)
        self._quota_lock = threading.Lock()
        # Called once per throttled attempt (KmsDecrypter counts them).
        self.on_throttle: Callable[[], None] | None = None

    @staticmethod
    def _tls_context(session: boto3.Session) -> ssl.SSLContext:
        bundle = session._session.get_config_variable("ca_bundle")  # AWS_CA_BUNDLE, or profile
        return ssl.create_default_context(cafile=bundle or botocore.httpsession.get_cert_path(True))

    def _operation(self, name: str) -> OperationModel:
        operation = self._operations.get(name)
        if operation is None:
            operation = self._operations[name] = self._service_model.operation_model(name)
        return operation

    # -- one call ----------------------------------------------------------------------------

    def call(self, operation_name: str, body: bytes) -> bytes:
        """The operation's response body (status 200, its CRC32 checked where the service sends
        one); retried as botocore would; raises what botocore would."""
        request_context: dict[str, Any] = {}
        attempt = 0
        while True:
            attempt += 1
            verdict = self._judge(
                operation_name, attempt, request_context, *self._attempt(operation_name, body)
            )
            if isinstance(verdict, _Retry):
                time.sleep(verdict.delay)
                continue
            if isinstance(verdict, Exception):
                raise verdict
            return verdict

    def _judge(
        self,
        operation_name: str,
        attempt: int,
        request_context: dict[str, Any],
        status: int,
        headers: dict[str, str],
        data: bytes,
        exc: Exception | None,
    ) -> bytes | _Retry | Exception:
        """What one attempt's outcome means, as botocore's standard retry mode decides it: the
        body (a success), a retry after a delay, or the error the call raises."""
        if exc is None and status == 200 and _crc32_matches(headers, data):
            self._release_quota(request_context, status)
            return data
        operation = self._operation(operation_name)
        parsed = None
        response = None
        if exc is None:
            response = AWSResponse(self.endpoint_url, status, cast(Any, headers), _Raw(data))
            if status != 200:
                assert operation.output_shape is not None
                parsed = self._parser.parse(
                    {"status_code": status, "headers": headers, "body": data},
                    operation.output_shape,
                )
            else:  # a checksum mismatch: retried, as botocore's special case does
                parsed = {"ResponseMetadata": {"HTTPStatusCode": status}}
        context = standard.RetryContext(
            attempt_number=attempt,
            operation_model=operation,
            parsed_response=parsed,
            http_response=response,
            caught_exception=exc,
            request_context=request_context,
        )
        if self.on_throttle is not None and self._detector.is_throttling_error_from_context(
            context
        ):
            self.on_throttle()
        if self._policy.should_retry(context) and self._acquire_quota(context):
            return _Retry(self._policy.compute_retry_delay(context))
        if exc is not None:
            return exc
        assert parsed is not None
        # As botocore's retry handler and endpoint record them (the error's message says
        # "reached max retries" from these).
        metadata = parsed.setdefault("ResponseMetadata", {})
        metadata.update(context.get_retry_metadata())
        metadata["RetryAttempts"] = attempt - 1
        if status == 200:
            return ClientError(
                {"Error": {"Code": "CRC32CheckFailed", "Message": "CRC32 mismatch"}},
                operation_name,
            )
        return ClientError(cast(Any, parsed), operation_name)

    def call_many(
        self,
        operation_name: str,
        bodies: Sequence[bytes],
        concurrency: int,
        pace: Callable[[], None] | None = None,
    ) -> list[bytes | Exception]:
        """Every body's call, each as :meth:`call` makes it (the same attempts, judged the same
        way, with the same stale-connection resend), up to ``concurrency`` in flight at once on
        kept-alive connections, all from this one thread: sent, then waited for together with
        ``selectors``, each response read by the standard library's HTTP client once its
        socket is readable, each retry's backoff a timer rather than a sleep. Results in order:
        a body, or the error :meth:`call` would have raised. ``pace`` is called before each
        call's first attempt (the request budget's turn).

        Measured (bench/multiplexed.py), one thread waiting on many sockets costs each call
        less CPU than threads taking turns on the GIL, and no more than calls made one after
        another: one ``select`` wakes for several responses."""
        calls = [_Call(index, body) for index, body in enumerate(bodies)]
        results: list[bytes | Exception | None] = [None] * len(calls)
        ready: deque[_Call] = deque(calls)
        backoff: list[tuple[float, int, _Call]] = []  # (when, index, call): a heap
        # By index, in the order sent, which is the order of their deadlines (each is the
        # moment it was sent plus the one read timeout): the first is always the next due.
        in_flight: dict[int, _Call] = {}
        selector = selectors.DefaultSelector()

        def settle(
            call: _Call, outcome: tuple[int, dict[str, str], bytes, Exception | None]
        ) -> None:
            verdict = self._judge(operation_name, call.attempt, call.request_context, *outcome)
            if isinstance(verdict, _Retry):
                heapq.heappush(backoff, (time.monotonic() + verdict.delay, call.index, call))
            else:
                results[call.index] = verdict

        def fail(
            call: _Call, connection: _Connection | None, exc: Exception, *, resendable: bool
        ) -> None:
            """A failed exchange: its connection never used again; the request sent again at
            once on a new one when the kept-alive one was stale, else the attempt judged."""
            _close(connection)
            failed, again = self._failed(exc, resendable=resendable)
            if again:
                send(call, fresh=True)
            else:
                settle(call, (0, {}, b"", failed))

        def send(call: _Call, *, fresh: bool) -> None:
            if not fresh:  # a new attempt (not the resend of one): signed anew
                call.attempt += 1
                call.headers = self._signed_headers(operation_name, call.body)
            connection: _Connection | None = None
            reused = False
            try:
                connection, reused = self._connection(fresh)
                connection.request_at_once(self._path, call.body, dict(call.headers))
            except (_ConnectFailed, *_EXCHANGE_FAULTS) as exc:
                fail(call, connection, exc, resendable=reused and not fresh)
                return
            call.connection, call.resendable = connection, reused and not fresh
            call.deadline = time.monotonic() + self._read_timeout
            selector.register(cast(socket.socket, connection.sock), selectors.EVENT_READ, call)
            in_flight[call.index] = call

        def taken(call: _Call) -> _Connection:
            """``call``'s connection, no longer in flight nor waited on."""
            connection = call.connection
            assert connection is not None
            del in_flight[call.index]
            selector.unregister(cast(socket.socket, connection.sock))
            call.connection = None
            return connection

        def receive(call: _Call) -> None:
            connection = taken(call)
            try:
                outcome = self._receive(connection)
            except _EXCHANGE_FAULTS as exc:
                fail(call, connection, exc, resendable=call.resendable)
                return
            settle(call, (*outcome, None))

        try:
            while ready or backoff or in_flight:
                now = time.monotonic()
                while backoff and backoff[0][0] <= now:
                    ready.append(heapq.heappop(backoff)[2])
                while ready and len(in_flight) < concurrency:
                    call = ready.popleft()
                    if pace is not None and call.attempt == 0:
                        pace()
                    send(call, fresh=False)
                if not in_flight:
                    if backoff and not ready:
                        time.sleep(max(0.0, backoff[0][0] - time.monotonic()))
                    continue
                wake = next(iter(in_flight.values())).deadline
                if backoff:
                    wake = min(wake, backoff[0][0])
                for key, _ in selector.select(max(0.0, wake - time.monotonic())):
                    receive(key.data)
                now = time.monotonic()
                while in_flight and (due := next(iter(in_flight.values()))).deadline <= now:
                    # No answer within the read timeout: the connection is given up, as a
                    # blocking read's timeout gives it up.
                    fail(due, taken(due), TimeoutError("timed out"), resendable=False)
        finally:
            for call in in_flight.values():  # only when an error escaped: nothing half-read
                _close(call.connection)
            selector.close()
        return cast(list[bytes | Exception], results)

    def _acquire_quota(self, context: standard.RetryContext) -> bool:
        with self._quota_lock:
            return bool(self._quota.acquire_retry_quota(context))

    def _release_quota(self, request_context: dict[str, Any], status: int) -> None:
        # botocore calls this (its after-call hook) with the request's context dict, which is
        # what holds the quota a retry took; its stubs say RetryContext.
        with self._quota_lock:
            self._quota.release_retry_quota(
                cast(Any, request_context),
                AWSResponse(self.endpoint_url, status, cast(Any, {}), None),
            )

    def _signed_headers(self, operation_name: str, body: bytes) -> list[tuple[str, str]]:
        request = HttpRequest(
            "POST",
            self._path,
            HttpHeaders(
                [
                    ("Host", self._host_header),
                    ("Content-Type", self._content_type),
                    ("X-Amz-Target", f"{self._target_prefix}.{operation_name}"),
                    ("Content-Length", str(len(body))),
                ]
            ),
            None,
        )
        # A config of its own for every request: AwsSigningConfig takes its date when it is
        # made (``replace`` keeps it), and AWS refuses a signature more than five minutes old.
        signing = AwsSigningConfig(
            algorithm=AwsSigningAlgorithm.V4,
            signature_type=AwsSignatureType.HTTP_REQUEST_HEADERS,
            credentials_provider=self._credentials_provider(),
            region=self.region,
            service=self._signing_name,
            signed_body_value=hashlib.sha256(body).hexdigest(),
        )
        aws_sign_request(request, signing).result()
        return [*request.headers, ("User-Agent", self._user_agent)]

    def _credentials_provider(self) -> AwsCredentialsProvider:
        """The signer's credentials of the moment (read on every request, so a refresh is
        picked up); a provider is made again only when they change."""
        frozen = self._credentials.get_frozen_credentials()  # refreshes when due
        cached = getattr(self._local, "provider", None)
        if cached is not None and cached[0] == frozen:
            return cast(AwsCredentialsProvider, cached[1])
        provider = AwsCredentialsProvider.new_static(
            frozen.access_key, frozen.secret_key, frozen.token
        )
        self._local.provider = (frozen, provider)
        return provider

    def _attempt(
        self, operation_name: str, body: bytes
    ) -> tuple[int, dict[str, str], bytes, Exception | None]:
        """One HTTP exchange: (status, headers by lower-case name, body, None), or the botocore
        error a failed exchange is."""
        headers = self._signed_headers(operation_name, body)
        for fresh in (False, True):
            connection: _Connection | None = None
            reused = False
            try:
                connection, reused = self._connection(fresh)
                connection.request_at_once(self._path, body, dict(headers))
                return (*self._receive(connection), None)
            except (_ConnectFailed, *_EXCHANGE_FAULTS) as exc:
                failed, again = self._failed(exc, resendable=reused and not fresh)
                _close(connection)  # a failed exchange's connection is never used again
                if not again:
                    return 0, {}, b"", failed
        raise AssertionError("unreachable: a fresh connection is never resent")

    def _receive(self, connection: _Connection) -> tuple[int, dict[str, str], bytes]:
        """The response to the request sent on ``connection``, read in full; the connection
        goes back to the idle ones unless the server is closing it."""
        response = connection.getresponse()
        data = response.read()
        if not response.will_close:
            self._release(connection)
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data

    def _failed(self, exc: Exception, *, resendable: bool) -> tuple[Exception, bool]:
        """The botocore error a failed exchange is, and whether to send it again at once on a
        new connection (``resendable``: it was sent on a reused kept-alive one)."""
        if isinstance(exc, _ConnectFailed):
            return exc.error, False
        if isinstance(exc, _STALE):
            return ConnectionClosedError(endpoint_url=self.endpoint_url, error=exc), resendable
        if isinstance(exc, TimeoutError):
            return ReadTimeoutError(endpoint_url=self.endpoint_url, error=exc), False
        if isinstance(exc, ssl.SSLError):
            return SSLError(endpoint_url=self.endpoint_url, error=exc), False
        return ConnectionClosedError(endpoint_url=self.endpoint_url, error=exc), False

    # -- connections -------------------------------------------------------------------------

    def _connection(self, fresh: bool) -> tuple[_Connection, bool]:
        """An idle kept-alive connection (True: reused), else (or when ``fresh``) a new one."""
        if not fresh:
            with self._idle_lock:
                if self._idle:
                    return self._idle.pop(), True
        connection: _Connection
        if self._https:
            connection = _HTTPSConnection(
                self._host, self._port, timeout=self._connect_timeout, context=self._tls
            )
        else:
            connection = _Connection(self._host, self._port, timeout=self._connect_timeout)
        try:
            connection.connect()
        except TimeoutError as exc:
            raise _ConnectFailed(
                ConnectTimeoutError(endpoint_url=self.endpoint_url, error=exc)
            ) from exc
        except ssl.SSLError as exc:  # a certificate that does not verify, as botocore says it
            raise _ConnectFailed(SSLError(endpoint_url=self.endpoint_url, error=exc)) from exc
        except OSError as exc:
            raise _ConnectFailed(
                EndpointConnectionError(endpoint_url=self.endpoint_url, error=exc)
            ) from exc
        assert connection.sock is not None
        connection.sock.settimeout(self._read_timeout)
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection, False

    def _release(self, connection: _Connection) -> None:
        """A connection whose response was read in full, back to the idle ones (or closed,
        past ``max_pool_connections`` of them)."""
        with self._idle_lock:
            if len(self._idle) < self._max_idle:
                self._idle.append(connection)
                return
        connection.close()


class _Connection(http.client.HTTPConnection):
    """``request_at_once``: a POST whose head and body leave in one ``send``. ``request`` sends
    them in two, which is two system calls (each a point where the thread gives up the GIL to
    the others) and, with TCP_NODELAY, two TCP segments per request."""

    _held: list[bytes] | None = None

    def send(self, data: Any) -> None:
        if self._held is None:
            super().send(data)
        else:
            self._held.append(data)

    def request_at_once(self, path: str, body: bytes, headers: dict[str, str]) -> None:
        self._held = []
        try:
            self.request("POST", path, body=body, headers=headers)
            whole = b"".join(self._held)
        finally:
            self._held = None
        self.send(whole)


class _HTTPSConnection(_Connection, http.client.HTTPSConnection):
    pass


def _close(connection: _Connection | None) -> None:
    if connection is not None:
        connection.close()


def _max_attempts(config: Config, service: str) -> int:
    """Attempts in all, the first included, as botocore's client makes them of ``config``: its
    total, else botocore's standard default for the service. Only standard mode is sent lean."""
    retries = getattr(config, "retries", None) or {}
    mode = retries.get("mode", "standard")
    if mode != "standard":
        raise ValueError(
            f"the lean {service} client retries as botocore's standard mode, not {mode!r}"
        )
    if "total_max_attempts" in retries:
        return int(retries["total_max_attempts"])
    defaults: dict[str, int] = getattr(standard, "_SERVICE_MAX_ATTEMPTS", {})
    return defaults.get(service, standard.DEFAULT_MAX_ATTEMPTS)


def _crc32_matches(headers: dict[str, str], data: bytes) -> bool:
    """Whether the body matches the CRC32 the service sent with it (DynamoDB does), if any."""
    expected = headers.get(CRC32_HEADER)
    return expected is None or zlib.crc32(data) & 0xFFFFFFFF == int(expected)


class _Raw:
    """A received body, as botocore's checks read it (``AWSResponse.content``)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self) -> Iterator[bytes]:
        yield self._data


@dataclass(slots=True)
class _Call:
    """One call of :meth:`LeanJsonClient.call_many`, between its attempts."""

    index: int
    body: bytes
    attempt: int = 0
    request_context: dict[str, Any] = field(default_factory=dict)
    headers: list[tuple[str, str]] = field(default_factory=list)
    connection: _Connection | None = None
    resendable: bool = False  # sent on a reused kept-alive connection: resent once if stale
    deadline: float = 0.0


class _Retry:
    """An attempt to be made again after ``delay`` seconds (botocore's backoff)."""

    __slots__ = ("delay",)

    def __init__(self, delay: float) -> None:
        self.delay = delay


class _ConnectFailed(Exception):
    def __init__(self, error: Exception) -> None:
        self.error = error
