"""AWS JSON-protocol calls without botocore's per-call machinery: the hot loop's clients.

A call through a botocore client costs about a millisecond of CPU, most of it the client's own
(serialising by walking the operation's shapes, its event system, SigV4 in Python, urllib3):
see bench/. :class:`LeanJsonClient` sends the same requests with AWS's own parts, for the few
operations a sync makes once per ciphertext or per batch (KMS Decrypt, kms_lean.py; DynamoDB
Scan, BatchWriteItem and BatchGetItem, dynamodb_lean.py):

* **endpoint**: the one the botocore client made from the same session, region and config
  resolves for the call (its endpoint ruleset: ``AWS_ENDPOINT_URL`` and the service's own
  variable, FIPS, dual-stack, and DynamoDB's account-ID endpoints from the credentials'
  account);
* **transport**: awscrt's HTTP client (crt_http.py): TLS, proxies, timeouts and kept-alive
  connections as botocore's transport takes them from the same session and config;
* **signing**: awscrt's SigV4 signer, each request signed for the moment it is sent, with the
  session's credentials read on every request, so an assumed role's refresh (botocore's
  refreshable credentials) is picked up mid-run;
* **retries**: botocore's standard retry mode, its own objects (``StandardRetryConditions``,
  ``ExponentialBackoff`` with full jitter and the service's base, the retry quota), so the same
  codes and faults are retried (throttling, transient errors, connection faults, DynamoDB's
  CRC32 mismatch), as many times as the botocore client made from the same config would;
* **many at once**: ``call_many`` keeps many calls in flight from one thread; awscrt's event
  loop does the waiting, and each call is made, retried and judged as ``call`` makes it;
* **errors**: a failed call raises what the botocore client would: ``ClientError`` with the
  response botocore's own JSON parser makes of the error body, or botocore's connection error
  classes; so callers see the same codes either way.
"""

from __future__ import annotations

import functools
import heapq
import io
import queue
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol, cast
from urllib.parse import urlsplit

import boto3
import jmespath
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
from botocore.exceptions import ClientError
from botocore.model import OperationModel
from botocore.parsers import create_parser
from botocore.retries import quota, standard

from table_sync.aws.crt_http import CrtTransport, Exchange, Origin, Outcome, Response

CRC32_HEADER = "x-amz-crc32"

# awscrt runs every connection's callbacks on its one event loop thread, each needing the GIL:
# while the sending thread holds it (signing the next requests) that loop stalls, and the
# requests already activated wait to be written. So a batch lets the GIL go (time.sleep(0))
# after every YIELD_EVERY sends; after its last, waiting for the outcomes releases it. Each
# release is a switch between the two threads (on one vCPU, one each way). Measured on the
# latency model, 64 Decrypts in flight, alternating:
# * one 25,000-item segment pinned to one core: every send 7.9-8.3 s wall / 6.3-6.8 s CPU,
#   every 2nd 7.2-7.8 / 5.7-6.8, every 4th 7.3-7.5 / 5.3-5.5, every 8th 7.5 / 5.0, never
#   11 s / 4.7 s (the requests wait to be written);
# * the mirror's full run of 100,000 items, one process on two cores, a fresh model each:
#   every send 33.0-34.8 s, every 2nd 32.8-34.0 s, every 3rd 41.8 s, 4th 43.5-44.8 s, 8th 46.5 s.
# (When this transport was new, 48 in flight: the segment 9.4 s every send, 9.5 s every 2nd;
# the mirror 37.3 s every send, 46.0 s every 2nd.)
YIELD_EVERY = 2


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a call goes, as botocore resolves it: the URL, headers the ruleset adds, and the
    region and name to sign for."""

    url: str
    origin: Origin
    host: str
    path: str
    headers: tuple[tuple[str, str], ...]
    region: str
    signing_name: str


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
        self._service_model = model
        self._signing_name: str = model.signing_name
        self._target_prefix: str = model.metadata["targetPrefix"]
        self._content_type = f"application/x-amz-json-{model.metadata['jsonVersion']}"
        resolved = client.meta.config  # the config with botocore's defaults filled in
        max_attempts = _max_attempts(resolved, model.service_id.hyphenize())
        credentials = session.get_credentials()
        if credentials is None:
            raise ValueError(f"the {service} session has no credentials")
        self._credentials = credentials
        agent = getattr(resolved, "user_agent", None) or "botocore"
        self._user_agent = f"{agent} table-sync-lean"
        self.transport = CrtTransport(session, resolved, self.endpoint_url)
        self._local = threading.local()
        self._operations: dict[str, OperationModel] = {}
        self._endpoints: dict[tuple[Any, ...], Endpoint] = {}
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
        # Called once per throttled attempt (KmsDecrypter counts them).
        self.on_throttle: Callable[[], None] | None = None

    def _operation(self, name: str) -> OperationModel:
        operation = self._operations.get(name)
        if operation is None:
            operation = self._operations[name] = self._service_model.operation_model(name)
        return operation

    def endpoint(self, operation_name: str, params: Mapping[str, Any] | None = None) -> Endpoint:
        """The endpoint botocore's client sends ``operation_name`` with ``params`` to (its own
        resolver; the credentials' account for DynamoDB's account-ID endpoints). Resolved once
        per operation, account and context parameters: the ruleset's other inputs (region,
        FIPS, dual-stack, endpoint URL) are fixed when the botocore client is made."""
        operation = self._operation(operation_name)
        call_args = dict(params or {})
        account = self._credentials.get_frozen_credentials().account_id
        key = (operation_name, account, *_context_values(operation, call_args))
        found = self._endpoints.get(key)
        if found is None:
            if len(self._endpoints) >= 256:
                self._endpoints.clear()
            found = self._endpoints[key] = self._resolve(operation, call_args)
        return found

    def _resolve(self, operation: OperationModel, call_args: dict[str, Any]) -> Endpoint:
        context: dict[str, Any] = {}
        url, headers, _ = self.botocore_client._resolve_endpoint_ruleset(
            operation, call_args, context
        )
        signing = context.get("signing", {})
        parts = urlsplit(url)
        return Endpoint(
            url=url,
            origin=Origin.of(url),
            host=parts.netloc,
            path=parts.path or "/",
            headers=tuple((name, value) for name, value in (headers or {}).items()),
            region=signing.get("region") or self.region,
            signing_name=signing.get("signing_name") or self._signing_name,
        )

    # -- calls -------------------------------------------------------------------------------

    def call(
        self, operation_name: str, body: bytes, params: Mapping[str, Any] | None = None
    ) -> bytes:
        """The operation's response body (status 200, its CRC32 checked where the service sends
        one); retried as botocore would; raises what botocore would. ``params``: the call's
        parameters, for its endpoint (DynamoDB's depends on the table's account)."""
        [result] = self.call_many(operation_name, [body], 1, params=params)
        if isinstance(result, Exception):
            raise result
        return result

    def call_many(
        self,
        operation_name: str,
        bodies: Bodies,
        concurrency: int,
        pace: Callable[[], None] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> list[bytes | Exception]:
        """Every body's call, each as :meth:`call` makes it, up to ``concurrency`` in flight at
        once, from this one thread: awscrt's event loop sends them and waits for them, this
        thread judges each outcome as it comes (a retry's backoff is a timer, not a sleep).
        Results in order: a body, or the error :meth:`call` would have raised. ``pace`` is
        called before each call's first attempt (the request budget's turn). Each body is read
        from ``bodies`` when its call is first sent (see :class:`Bodies`)."""
        endpoint = self.endpoint(operation_name, params)
        return _Batch(self, operation_name, endpoint, bodies, concurrency, pace).run()

    def judge(
        self, operation_name: str, attempt: int, context: dict[str, Any], outcome: Outcome
    ) -> bytes | float | Exception:
        """What one attempt's outcome means, as botocore's standard retry mode decides it: the
        body (a success), a delay to retry after, or the error the call raises."""
        if isinstance(outcome, Response) and outcome.status == 200 and _crc32_matches(outcome):
            self._release_quota(context, outcome.status)
            return outcome.body
        operation = self._operation(operation_name)
        parsed = response = exc = None
        if isinstance(outcome, Exception):
            exc = outcome
        else:
            response = AWSResponse(
                self.endpoint_url, outcome.status, cast(Any, outcome.headers), _Raw(outcome.body)
            )
            parsed = self._parsed(operation, outcome)
        retry = standard.RetryContext(
            attempt_number=attempt,
            operation_model=operation,
            parsed_response=parsed,
            http_response=response,
            caught_exception=exc,
            request_context=context,
        )
        if self.on_throttle is not None and self._detector.is_throttling_error_from_context(retry):
            self.on_throttle()
        if self._policy.should_retry(retry) and self._acquire_quota(retry):
            return float(self._policy.compute_retry_delay(retry))
        if exc is not None:
            return exc
        assert parsed is not None
        # As botocore's retry handler and endpoint record them (the error's message says
        # "reached max retries" from these).
        metadata = parsed.setdefault("ResponseMetadata", {})
        metadata.update(retry.get_retry_metadata())
        metadata["RetryAttempts"] = attempt - 1
        if outcome.status == 200:  # type: ignore[union-attr]
            return ClientError(
                {"Error": {"Code": "CRC32CheckFailed", "Message": "CRC32 mismatch"}},
                operation_name,
            )
        return ClientError(cast(Any, parsed), operation_name)

    def _parsed(self, operation: OperationModel, response: Response) -> dict[str, Any]:
        if response.status == 200:  # a checksum mismatch: retried, as botocore's special case does
            return {"ResponseMetadata": {"HTTPStatusCode": 200}}
        assert operation.output_shape is not None
        raw = {"status_code": response.status, "headers": response.headers, "body": response.body}
        return cast(dict[str, Any], self._parser.parse(raw, operation.output_shape))

    def _acquire_quota(self, context: standard.RetryContext) -> bool:
        return bool(self._quota.acquire_retry_quota(context))  # RetryQuota holds its own lock

    def _release_quota(self, request_context: dict[str, Any], status: int) -> None:
        # botocore calls this (its after-call hook) with the request's context dict, which is
        # what holds the quota a retry took; its stubs say RetryContext. It reads only the
        # response's status code.
        self._quota.release_retry_quota(cast(Any, request_context), _Status(status))

    def signed_request(self, operation_name: str, body: bytes, endpoint: Endpoint) -> HttpRequest:
        """The request to send: its headers signed by awscrt for this moment (the body hashed by
        the signer, from the request's body stream)."""
        request = HttpRequest(
            "POST",
            endpoint.path,
            HttpHeaders(
                [
                    ("Host", endpoint.host),
                    ("Content-Type", self._content_type),
                    ("X-Amz-Target", f"{self._target_prefix}.{operation_name}"),
                    ("Content-Length", str(len(body))),
                    *endpoint.headers,
                ]
            ),
            io.BytesIO(body),
        )
        aws_sign_request(request, self._signing_config(endpoint)).result()
        request.headers.add("User-Agent", self._user_agent)  # unsigned, as botocore leaves it
        return request

    def _signing_config(self, endpoint: Endpoint) -> AwsSigningConfig:
        """The signer's setup for this second: the credentials of the moment (read on every
        request, so a refresh is picked up), dated at the current second. X-Amz-Date counts
        whole seconds, so a setup reused within its second signs exactly as a new one would;
        AWS refuses a signature more than five minutes old, so none is kept longer."""
        frozen = self._credentials.get_frozen_credentials()  # refreshes when due
        second = int(time.time())
        key = (frozen, endpoint.region, endpoint.signing_name, second)
        cached = getattr(self._local, "signing", None)
        if cached is not None and cached[0] == key:
            return cast(AwsSigningConfig, cached[1])
        config = AwsSigningConfig(
            algorithm=AwsSigningAlgorithm.V4,
            signature_type=AwsSignatureType.HTTP_REQUEST_HEADERS,
            credentials_provider=AwsCredentialsProvider.new_static(
                frozen.access_key, frozen.secret_key, frozen.token
            ),
            region=endpoint.region,
            service=endpoint.signing_name,
            date=datetime.fromtimestamp(second, UTC),
        )
        self._local.signing = (key, config)
        return config


class Bodies(Protocol):
    """A batch's request bodies by index: a list, or an object that makes each when asked.
    A batch asks for each once, when its call is first sent, and keeps it for the call's
    retries: a page's 4,600 Decrypt bodies are then made while the first are in flight, not
    all before the first is sent, and only the calls in flight hold theirs."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int, /) -> bytes: ...


@dataclass(slots=True)
class _Call:
    """One call of a batch, between its attempts (its body read when it is first sent)."""

    index: int
    body: bytes = b""
    attempt: int = 0
    context: dict[str, Any] = field(default_factory=dict)
    exchange: Exchange | None = None


class _Batch:
    """The calls of one :meth:`LeanJsonClient.call_many`: sent from the calling thread, their
    outcomes handed back to it by awscrt's callbacks through a queue, judged there."""

    def __init__(
        self,
        client: LeanJsonClient,
        operation_name: str,
        endpoint: Endpoint,
        bodies: Bodies,
        concurrency: int,
        pace: Callable[[], None] | None,
    ) -> None:
        self._client = client
        self._operation = operation_name
        self._endpoint = endpoint
        self._bodies = bodies
        self._ready = [_Call(index) for index in range(len(bodies) - 1, -1, -1)]
        self._results: list[bytes | Exception | None] = [None] * len(bodies)
        self._concurrency = max(1, concurrency)
        self._pace = pace
        self._backoff: list[tuple[float, int, _Call]] = []  # (when, index, call): a heap
        self._in_flight: dict[int, _Call] = {}
        self._outcomes: queue.SimpleQueue[tuple[_Call, Outcome]] = queue.SimpleQueue()
        self._first_idle: float | None = None  # see _idle_check
        self._sends = 0

    def run(self) -> list[bytes | Exception]:
        try:
            while self._ready or self._backoff or self._in_flight:
                self._send_due()
                self._settle(self._wait())
        finally:
            for call in self._in_flight.values():  # only when an error escaped
                if call.exchange is not None:
                    call.exchange.abandon()
        return cast(list[bytes | Exception], self._results)

    def _send_due(self) -> None:
        now = time.monotonic()
        while self._backoff and self._backoff[0][0] <= now:
            self._ready.append(heapq.heappop(self._backoff)[2])
        while self._ready and len(self._in_flight) < self._concurrency:
            call = self._ready.pop()
            if call.attempt == 0:
                if self._pace is not None:
                    self._pace()
                call.body = self._bodies[call.index]
            call.attempt += 1
            self._in_flight[call.index] = call
            client = self._client
            request = client.signed_request(self._operation, call.body, self._endpoint)
            call.exchange = client.transport.send(
                self._endpoint.origin, request, call.body, functools.partial(self._arrived, call)
            )
            self._sends += 1
            if self._ready and self._sends % YIELD_EVERY == 0:
                time.sleep(0)  # see YIELD_EVERY

    def _arrived(self, call: _Call, outcome: Outcome) -> None:
        """awscrt's callback (on its event loop thread): the outcome, to the calling thread."""
        self._outcomes.put((call, outcome))

    def _wait(self) -> Iterator[tuple[_Call, Outcome]]:
        """The outcomes that arrive before the next timer is due (a retry's backoff, or an
        exchange's read timeout), all that are there once one is."""
        due = [self._backoff[0][0]] if self._backoff else []
        if self._in_flight:
            due.append(self._idle_check())
        wait = max(0.0, min(due) - time.monotonic()) if due else None
        try:
            yield self._outcomes.get(timeout=wait)
        except queue.Empty:
            now = time.monotonic()
            self._first_idle = None
            for call in list(self._in_flight.values()):
                if call.exchange is not None:
                    call.exchange.idle(now)  # a timed-out one's outcome is queued
        while not self._outcomes.empty():
            yield self._outcomes.get_nowait()

    def _idle_check(self) -> float:
        """When the first exchange in flight could go the read timeout without a byte: kept
        until it passes, as it stays a lower bound (exchanges only gain activity, and new ones
        start later), so the exchanges are not all looked at again for every outcome."""
        if self._first_idle is None:
            self._first_idle = self._client.transport.read_timeout + min(
                c.exchange.last_activity for c in self._in_flight.values() if c.exchange
            )
        return self._first_idle

    def _settle(self, outcomes: Iterator[tuple[_Call, Outcome]]) -> None:
        for call, outcome in outcomes:
            self._in_flight.pop(call.index, None)
            verdict = self._client.judge(self._operation, call.attempt, call.context, outcome)
            if isinstance(verdict, float):
                heapq.heappush(self._backoff, (time.monotonic() + verdict, call.index, call))
            else:
                self._results[call.index] = verdict


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


def _context_values(operation: OperationModel, params: dict[str, Any]) -> list[Any]:
    """The values the endpoint ruleset reads from a call's parameters (DynamoDB's table names,
    which may be ARNs in another account), hashable."""
    values = [params.get(p.member_name) for p in operation.context_parameters]
    found: Any = operation.operation_context_parameters or {}  # a dict by name, or []
    for parameter in found.values():
        values.append(jmespath.search(parameter["path"], params))
    return [tuple(v) if isinstance(v, list) else v for v in values]


def _crc32_matches(response: Response) -> bool:
    """Whether the body matches the CRC32 the service sent with it (DynamoDB does), if any."""
    expected = response.headers.get(CRC32_HEADER)
    return expected is None or zlib.crc32(response.body) & 0xFFFFFFFF == int(expected)


class _Status(NamedTuple):
    """A response as botocore's retry quota reads it on success."""

    status_code: int


class _Raw:
    """A received body, as botocore's checks read it (``AWSResponse.content``)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self) -> Iterator[bytes]:
        yield self._data
