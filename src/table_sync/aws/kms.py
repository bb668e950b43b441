"""KMS Decrypt, always naming the key, with each distinct ciphertext decrypted once per run.

* ``KeyId`` is the configured key ARN on every call, as AWS recommends: KMS then refuses a
  ciphertext made under any other key instead of decrypting with whatever key it names.
* Identical (ciphertext, encryption context) pairs are decrypted once: a bounded LRU cache in
  memory, with concurrent requests for the same ciphertext waiting on the one in flight. The
  plaintexts live only in this process's memory for the run; nothing is written anywhere.
* Throttling is retried by the client's standard retry mode (see clients.py); a Decrypt still
  throttled after KMS_MAX_ATTEMPTS fails the run (never the item: it is not the item's fault).
  Every throttled attempt is counted (``throttles``).
* ``budget`` (KMS_REQUESTS_PER_SECOND, see pipeline/budgets.py), when set, is called before
  every request and waits for the request's turn.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from table_sync.aws.errors import error_code
from table_sync.aws.kms_lean import LeanKmsClient

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

# Codes that say this ciphertext is bad, rather than that KMS or the role is.
ITEM_ERRORS = frozenset({"InvalidCiphertextException", "IncorrectKeyException"})
ACCESS_DENIED = frozenset({"AccessDeniedException", "AccessDenied", "403"})
THROTTLING = frozenset({"ThrottlingException", "Throttling", "LimitExceededException"})

_CacheKey = tuple[bytes, tuple[tuple[str, str], ...]]


class KmsDecryptFailed(Exception):
    """One Decrypt failed. ``code`` is the AWS error code (or botocore's error class for a
    request that got no answer), never the ciphertext."""

    def __init__(self, code: str) -> None:
        self.code = code
        super().__init__(code)

    @property
    def access_denied(self) -> bool:
        return self.code in ACCESS_DENIED


class KmsDecrypter:
    """Decrypts ciphertexts under one key; counts requests, cache hits and successes."""

    def __init__(
        self, client: KMSClient | LeanKmsClient, key_arn: str, *, cache_size: int = 10_000
    ) -> None:
        self._client = client
        self.key_arn = key_arn
        self._cache_size = cache_size
        self._cache: OrderedDict[_CacheKey, bytes] = OrderedDict()
        self._inflight: dict[_CacheKey, Future[bytes]] = {}
        self._lock = threading.Lock()
        self.requests = 0
        self.cache_hits = 0
        self.successes = 0
        self.throttles = 0
        self.budget: Callable[[], None] | None = None
        if isinstance(client, LeanKmsClient):
            client.on_throttle = self._count_one_throttle
        else:
            client.meta.events.register("needs-retry.kms.Decrypt", self._count_throttle)

    def _count_one_throttle(self) -> None:
        with self._lock:
            self.throttles += 1

    def _count_throttle(self, response: Any = None, **_: Any) -> None:
        """botocore's retry hook, called after every attempt: count the throttled ones."""
        if response is not None and response[1].get("Error", {}).get("Code") in THROTTLING:
            self._count_one_throttle()

    def decrypt(self, ciphertext: bytes, context: Mapping[str, str] | None = None) -> bytes:
        key: _CacheKey = (bytes(ciphertext), tuple(sorted((context or {}).items())))
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                self.cache_hits += 1
                return self._cache[key]
            waiting = self._inflight.get(key)
            if waiting is None:
                future: Future[bytes] = Future()
                self._inflight[key] = future
            else:
                self.cache_hits += 1
        if waiting is not None:
            return waiting.result()  # raises the same KmsDecryptFailed as the request in flight
        try:
            plaintext = self._request(ciphertext, context)
        except KmsDecryptFailed as exc:
            with self._lock:
                del self._inflight[key]
            future.set_exception(exc)
            raise
        with self._lock:
            del self._inflight[key]
            if self._cache_size > 0:
                self._cache[key] = plaintext
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        future.set_result(plaintext)
        return plaintext

    def _request(self, ciphertext: bytes, context: Mapping[str, str] | None) -> bytes:
        kwargs: dict[str, Any] = {"CiphertextBlob": ciphertext, "KeyId": self.key_arn}
        if context:
            kwargs["EncryptionContext"] = dict(context)
        if self.budget is not None:
            self.budget()
        with self._lock:
            self.requests += 1
        try:
            response = self._client.decrypt(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            # A timeout or refused connection (after botocore's retries) is the run's failure,
            # not the item's: its kind is botocore's class name, which no format treats as the
            # item's own.
            raise KmsDecryptFailed(error_code(exc)) from exc
        with self._lock:
            self.successes += 1
        return response["Plaintext"]
