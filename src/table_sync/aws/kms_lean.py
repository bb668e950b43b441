"""KMS Decrypt without botocore's per-call machinery (``KMS_CLIENT=lean``).

A Decrypt through a botocore client costs about a millisecond of CPU, most of it the client's
own (serialising, its event system, SigV4 in Python, urllib3): see bench/. This client sends
the same request with AWS's own parts and the standard library:

* **endpoint, TLS, timeouts**: the endpoint is the one a botocore KMS client made from the same
  session, region and config resolves (``AWS_ENDPOINT_URL``/``AWS_ENDPOINT_URL_KMS`` honoured);
  certificates are verified against ``AWS_CA_BUNDLE`` (or the profile's ``ca_bundle``), else
  botocore's own bundle; the config's connect and read timeouts apply; one kept-alive
  connection per thread.
* **signing**: awscrt's SigV4 signer (the AWS Common Runtime, boto3's optional native
  dependency), with the session's credentials read on every request, so the assumed role's
  refresh (botocore's refreshable credentials) is picked up mid-run.
* **retries**: botocore's standard retry mode, its own objects (``StandardRetryConditions``,
  ``ExponentialBackoff`` with full jitter, the retry quota), up to ``KMS_MAX_ATTEMPTS``.
* **errors**: a failed call raises what the botocore client would: ``ClientError`` with the
  response botocore's own JSON parser makes of the error body, or botocore's connection error
  classes; so quarantine and failure see the same codes either way.

Only Decrypt is sent this way; the request body is the one botocore would serialise.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
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
from botocore.parsers import create_parser
from botocore.retries import quota, standard

TARGET = "TrentService.Decrypt"
CONTENT_TYPE = "application/x-amz-json-1.1"
# The connection failed after the request may have been sent: a kept-alive connection the
# server had closed. Decrypt is idempotent, so it is sent again at once on a new connection.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class LeanKmsClient:
    """``decrypt(CiphertextBlob=..., KeyId=..., EncryptionContext=...)`` -> ``{"Plaintext"}``."""

    def __init__(
        self, session: boto3.Session, region: str | None, config: Config, max_attempts: int
    ) -> None:
        botocore_client = session.client("kms", region_name=region, config=config)
        self.region: str = botocore_client.meta.region_name
        self.endpoint_url: str = botocore_client.meta.endpoint_url
        url = urlsplit(self.endpoint_url)
        self._https = url.scheme == "https"
        self._host = url.hostname or ""
        self._port = url.port or (443 if self._https else 80)
        self._host_header = url.netloc
        self._path = url.path or "/"
        resolved = botocore_client.meta.config  # the config with botocore's defaults filled in
        self._connect_timeout = float(getattr(resolved, "connect_timeout", 60))
        self._read_timeout = float(getattr(resolved, "read_timeout", 60))
        credentials = session.get_credentials()
        if credentials is None:
            raise ValueError("the KMS session has no credentials")
        self._credentials = credentials
        agent = getattr(resolved, "user_agent", None) or "botocore"
        self._user_agent = f"{agent} table-sync-lean"
        self._tls = self._tls_context(session) if self._https else None
        self._local = threading.local()
        operation = botocore_client.meta.service_model.operation_model("Decrypt")
        assert operation.output_shape is not None
        self._operation = operation
        self._output_shape = operation.output_shape
        self._parser = create_parser("json")
        detector = standard.ThrottlingErrorDetector(standard.RetryEventAdapter())
        self._detector = detector
        self._policy = standard.RetryPolicy(
            retry_checker=standard.StandardRetryConditions(max_attempts=max_attempts),
            retry_backoff=standard.ExponentialBackoff(
                service_name="kms", throttling_detector=detector
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

    # -- one call ----------------------------------------------------------------------------

    def decrypt(
        self,
        *,
        CiphertextBlob: bytes,
        KeyId: str,
        EncryptionContext: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "CiphertextBlob": base64.b64encode(CiphertextBlob).decode(),
            "KeyId": KeyId,
        }
        if EncryptionContext:
            payload["EncryptionContext"] = dict(EncryptionContext)
        body = json.dumps(payload, separators=(",", ":")).encode()
        request_context: dict[str, Any] = {}
        attempt = 0
        while True:
            attempt += 1
            status, headers, data, exc = self._attempt(body)
            if exc is None and status == 200:
                self._release_quota(request_context, status)
                plaintext = json.loads(data)["Plaintext"]
                return {"Plaintext": base64.b64decode(plaintext), "KeyId": KeyId}
            parsed = None
            response = None
            if exc is None:
                response = AWSResponse(self.endpoint_url, status, cast(Any, headers), None)
                parsed = self._parser.parse(
                    {"status_code": status, "headers": headers, "body": data}, self._output_shape
                )
            context = standard.RetryContext(
                attempt_number=attempt,
                operation_model=self._operation,
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
                time.sleep(self._policy.compute_retry_delay(context))
                continue
            if exc is not None:
                raise exc
            assert parsed is not None
            raise ClientError(cast(Any, parsed), "Decrypt")

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

    def _signed_headers(self, body: bytes) -> list[tuple[str, str]]:
        signing = self._signing_config()
        request = HttpRequest(
            "POST",
            self._path,
            HttpHeaders(
                [
                    ("Host", self._host_header),
                    ("Content-Type", CONTENT_TYPE),
                    ("X-Amz-Target", TARGET),
                    ("Content-Length", str(len(body))),
                ]
            ),
            None,
        )
        signed = signing.replace(signed_body_value=_sha256_hex(body))
        aws_sign_request(request, signed).result()
        return [*request.headers, ("User-Agent", self._user_agent)]

    def _signing_config(self) -> AwsSigningConfig:
        """The signer's config for the credentials of the moment (read on every request, so a
        refresh is picked up); made again only when they change."""
        frozen = self._credentials.get_frozen_credentials()  # refreshes when due
        cached = getattr(self._local, "signing", None)
        if cached is not None and cached[0] == frozen:
            return cached[1]
        config = AwsSigningConfig(
            algorithm=AwsSigningAlgorithm.V4,
            signature_type=AwsSignatureType.HTTP_REQUEST_HEADERS,
            credentials_provider=AwsCredentialsProvider.new_static(
                frozen.access_key, frozen.secret_key, frozen.token
            ),
            region=self.region,
            service="kms",
        )
        self._local.signing = (frozen, config)
        return config

    def _attempt(self, body: bytes) -> tuple[int, dict[str, str], bytes, Exception | None]:
        """One HTTP exchange: (status, headers, body, None), or the botocore error a failed
        exchange is."""
        headers = self._signed_headers(body)
        failed: Exception | None = None
        for fresh in (False, True):
            reused = False
            try:
                connection, reused = self._connection(fresh)
                connection.request("POST", self._path, body=body, headers=dict(headers))
                response = connection.getresponse()
                data = response.read()
                return response.status, dict(response.getheaders()), data, None
            except _ConnectFailed as exc:
                return 0, {}, b"", exc.error
            except _STALE as exc:
                self._drop()
                failed = ConnectionClosedError(endpoint_url=self.endpoint_url, error=exc)
                if reused and not fresh:
                    continue  # a kept-alive connection the server had closed: once more, anew
            except TimeoutError as exc:
                self._drop()
                failed = ReadTimeoutError(endpoint_url=self.endpoint_url, error=exc)
            except ssl.SSLError as exc:
                self._drop()
                failed = SSLError(endpoint_url=self.endpoint_url, error=exc)
            except OSError as exc:
                self._drop()
                failed = ConnectionClosedError(endpoint_url=self.endpoint_url, error=exc)
            break
        return 0, {}, b"", failed

    # -- connections -------------------------------------------------------------------------

    def _connection(self, fresh: bool) -> tuple[http.client.HTTPConnection, bool]:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is not None and not fresh:
            return connection, True
        self._drop()
        if self._https:
            connection = http.client.HTTPSConnection(
                self._host, self._port, timeout=self._connect_timeout, context=self._tls
            )
        else:
            connection = http.client.HTTPConnection(
                self._host, self._port, timeout=self._connect_timeout
            )
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
        self._local.connection = connection
        return connection, False

    def _drop(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None


class _ConnectFailed(Exception):
    def __init__(self, error: Exception) -> None:
        self.error = error


def _sha256_hex(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()
