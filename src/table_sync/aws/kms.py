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
* With the lean client, a page's ciphertexts are decrypted before its items are decoded:
  :meth:`KmsDecrypter.prefetched` sends every one not yet known, up to DECRYPT_CONCURRENCY at
  once from one thread, and holds each result (a plaintext, or the failure) for the decoder's
  ``decrypt`` of it, which then needs no request. What the page did not use is dropped when it
  has been decoded.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from table_sync.aws.errors import DamagedResponse, error_code, require, until_undamaged
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
        self,
        client: KMSClient | LeanKmsClient,
        key_arn: str,
        *,
        cache_size: int = 10_000,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._sleep = sleep
        self.key_arn = key_arn
        self._cache_size = cache_size
        self._cache: OrderedDict[_CacheKey, bytes] = OrderedDict()
        self._inflight: dict[_CacheKey, Future[bytes]] = {}
        self._fetched: dict[_CacheKey, bytes | KmsDecryptFailed] = {}
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

    @property
    def multiplexes(self) -> bool:
        """Whether :meth:`prefetched` sends requests (the lean client), rather than nothing."""
        return isinstance(self._client, LeanKmsClient)

    @contextmanager
    def prefetched(
        self, wanted: Sequence[Sequence[tuple[bytes, Mapping[str, str] | None]]], concurrency: int
    ) -> Iterator[None]:
        """Within the block, ``decrypt`` needs no request for what ``wanted`` names: one list
        per item, its Decrypts in the order its decoder asks for them. They are sent on entry,
        up to ``concurrency`` at once, in rounds: each round sends every item's first one not
        yet known, and an item stops at its first failure, as its decoder does, so no more
        Decrypts are sent than decoding the items one by one would send. Each result (a
        plaintext, or its failure, raised as a request's would be) waits for its first
        ``decrypt``, and is counted as ``decrypt`` would count it: a request each, a cache hit
        for each use after the first. What the block did not use is dropped on leaving it.
        Without the lean client it sends nothing, and ``decrypt`` sends each request."""
        client = self._client
        if not isinstance(client, LeanKmsClient):
            yield
            return
        fetched = self._fetched
        items = [[(_key(*pair), pair) for pair in pairs] for pairs in wanted if pairs]
        positions = [0] * len(items)
        active = list(range(len(items)))
        try:
            while active:
                todo: dict[_CacheKey, tuple[bytes, Mapping[str, str] | None]] = {}
                waiting = []
                for index in active:
                    pairs = items[index]
                    while positions[index] < len(pairs):
                        key, pair = pairs[positions[index]]
                        known = fetched.get(key)
                        if known is None and key not in self._cache:
                            todo.setdefault(key, pair)
                            waiting.append(index)
                            break
                        if isinstance(known, KmsDecryptFailed):
                            break  # the item's decoder stops at its failure
                        positions[index] += 1
                active = waiting
                if todo:
                    results = client.decrypt_many(
                        list(todo.values()), self.key_arn, concurrency, self._pace
                    )
                    with self._lock:
                        for key, result in zip(todo, results, strict=True):
                            if isinstance(result, bytes):
                                self.successes += 1
                                fetched[key] = result
                            else:
                                fetched[key] = _failure(result)
            yield
        finally:
            with self._lock:
                fetched.clear()

    def _pace(self) -> None:
        if self.budget is not None:
            self.budget()
        with self._lock:
            self.requests += 1

    def decrypt(self, ciphertext: bytes, context: Mapping[str, str] | None = None) -> bytes:
        key = _key(ciphertext, context)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                self.cache_hits += 1
                return self._cache[key]
            fetched = self._fetched.pop(key, None)
            if isinstance(fetched, bytes):
                self._remember(key, fetched)
                return fetched
        if fetched is not None and fetched.code != DamagedResponse.__name__:
            raise fetched  # the failure this page's request met, as the request would raise it
        with self._lock:
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
            self._remember(key, plaintext)
        future.set_result(plaintext)
        return plaintext

    def _remember(self, key: _CacheKey, plaintext: bytes) -> None:
        """Into the cache (the caller holds the lock)."""
        if self._cache_size > 0:
            self._cache[key] = plaintext
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def prove(self, candidates: Sequence[tuple[bytes, Mapping[str, str] | None]]) -> str | None:
        """One Decrypt sent, never answered from the cache, for the first of ``candidates``
        that KMS decrypts: the run's proof that its key and permissions work, even when no item
        changed. None once one succeeds (or there was no ciphertext to try); else the error
        code that disproves the key. An InvalidCiphertextException is the item's own (the next
        candidate is tried, and none failing otherwise proves nothing wrong with the key); an
        IncorrectKeyException is the key's once no candidate decrypts; any other error, at
        once (AccessDenied, a disabled or missing key)."""
        incorrect = None
        for ciphertext, context in candidates:
            try:
                self._request(ciphertext, context)
            except KmsDecryptFailed as failure:
                if failure.code not in ITEM_ERRORS:
                    return failure.code
                if failure.code == "IncorrectKeyException":
                    incorrect = failure.code
                continue
            return None
        return incorrect

    def _request(self, ciphertext: bytes, context: Mapping[str, str] | None) -> bytes:
        """One Decrypt; an answer without Plaintext (damaged) is asked for again, with capped
        backoff, then fails the run (DamagedResponse is no item's failure)."""
        kwargs: dict[str, Any] = {"CiphertextBlob": ciphertext, "KeyId": self.key_arn}
        if context:
            kwargs["EncryptionContext"] = dict(context)

        def attempt() -> bytes:
            self._pace()
            return bytes(require(self._client.decrypt(**kwargs), "Plaintext")["Plaintext"])

        try:
            plaintext = until_undamaged(attempt, self._sleep)
        except (ClientError, BotoCoreError) as exc:  # DamagedResponse too: no item's failure
            raise _failure(exc) from exc
        with self._lock:
            self.successes += 1
        return plaintext


def _key(ciphertext: bytes, context: Mapping[str, str] | None) -> _CacheKey:
    return (bytes(ciphertext), tuple(sorted((context or {}).items())))


def _failure(exc: Exception) -> KmsDecryptFailed:
    """A failed Decrypt as its kind. A timeout or refused connection (after botocore's
    retries) is the run's failure, not the item's: its kind is botocore's class name, which no
    format treats as the item's own."""
    if not isinstance(exc, (ClientError, BotoCoreError)):
        raise exc  # not a request's failure: a bug, raised as it is
    failure = KmsDecryptFailed(error_code(exc))
    failure.__cause__ = exc
    return failure
