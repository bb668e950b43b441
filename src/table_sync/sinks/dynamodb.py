"""Destination ``dynamodb://<table>``: BatchWriteItem, 25 puts a request, up to
WRITE_CONCURRENCY requests of a page at once.

Unlike boto3's BatchWriter, which resends UnprocessedItems at once and forever, this retries
them with capped exponential backoff and full jitter, and after the last attempt fails the run
naming every key that was not written. Throttling errors on the whole request are retried by
botocore's standard retry mode, configured on the client. A page's requests run concurrently
(a page of 1 MB is about 90 requests: one after another they would wait about as long as the
page's Decrypts); ``write`` returns only when every one of them is written, or raises.
"""

from __future__ import annotations

import random
import threading
import time
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime
from typing import TYPE_CHECKING, Any

from table_sync.aws.dynamodb import ScanPage, scan_pages
from table_sync.aws.errors import require, translated, until_undamaged
from table_sync.changes import DIGEST_BYTES, key_hash
from table_sync.concurrency import map_concurrently
from table_sync.errors import DestinationError, UnprocessedItemsError
from table_sync.items import BOOKKEEPING_SIZE_LIMIT, Item, describe_key, item_size, key_of
from table_sync.observability import logger
from table_sync.sinks.base import Finalized, SinkState

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from table_sync.source_keys import SourceKeys

BATCH_SIZE = 25  # BatchWriteItem's limit
GET_BATCH_SIZE = 100  # BatchGetItem's limit
# Every copy item carries the digest of the source item it was made from (pipeline/changes.py).
DIGEST_ATTRIBUTE = "_table_sync_digest"
DIGEST_BYTES_IN_ITEM = len(DIGEST_ATTRIBUTE) + DIGEST_BYTES
# Earlier versions marked every copied item with the run that wrote it (mark and sweep); a copy
# rewritten by this version loses the mark.
LEGACY_MARK_ATTRIBUTE = "_table_sync_run"
BOOKKEEPING_ATTRIBUTES = frozenset({DIGEST_ATTRIBUTE, LEGACY_MARK_ATTRIBUTE})
# The sweep reads the copy's keys as this many segments of a parallel scan, side by side: one
# after another, a sweep waits a Scan's latency for every page of keys (a million keys is about
# 30 pages of 1 MB), and its pages are the nightly run's last wait.
SWEEP_SEGMENTS = 4
KeyId = tuple[tuple[str, str, Any], ...]


def _in_sorted(sorted_hashes: array[int], value: int) -> bool:
    index = bisect_left(sorted_hashes, value)
    return index < len(sorted_hashes) and sorted_hashes[index] == value


def backoff_delay(attempt: int, base: float, cap: float, rng: Callable[[], float]) -> float:
    """Full-jitter delay before retry ``attempt`` (1-based): uniform in [0, min(cap, base*2^(n-1)))."""
    return rng() * min(cap, base * 2.0 ** (attempt - 1))


class DynamoDBSink:
    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        max_attempts: int = 8,
        backoff_base: float = 0.05,
        backoff_cap: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
        concurrency: int = 1,
        read_concurrency: int = 1,
    ) -> None:
        self._client = client
        self._concurrency = concurrency  # BatchWriteItem requests in flight
        self._read_concurrency = read_concurrency  # BatchGetItem requests in flight
        self._lock = threading.Lock()
        self.table_name = table_name
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._sleep = sleep
        self._rng = rng
        self.location: str | None = None
        self.key_attributes: tuple[str, ...] = ()
        self.items_written = 0
        self.retries = 0
        # Every put is acknowledged before write returns: a checkpoint may follow any write.
        self.committed = True

    def prepare(self) -> None:
        with translated(
            DestinationError,
            lambda code: f"destination table {self.table_name}: {code}",
            hints={"ResourceNotFoundException": " (create it, or fix DESTINATION)"},
        ):
            table = self._client.describe_table(TableName=self.table_name)["Table"]
        if table.get("TableStatus") not in ("ACTIVE", "UPDATING"):
            raise DestinationError(
                f"destination table {self.table_name} is {table.get('TableStatus')}, not ACTIVE"
            )
        schema = sorted(table["KeySchema"], key=lambda k: k["KeyType"] != "HASH")
        self.key_attributes = tuple(k["AttributeName"] for k in schema)
        self.location = table["TableArn"]

    def resume(self, state: SinkState) -> None:
        return None

    def flush(self) -> None:
        return None

    def state(self) -> dict[str, Any]:
        return {}

    def digests(self, keys: Sequence[Item]) -> list[bytes | None]:
        """Each key's copy's digest (None for no copy, or a copy without one): BatchGetItem of
        the key and digest only, strongly consistent. Reads in AccountB only; nothing is
        decrypted."""
        found = self.read(keys, (DIGEST_ATTRIBUTE,))
        return [
            bytes(item[DIGEST_ATTRIBUTE]["B"])
            # A digest that is not Binary is none of table-sync's (a copy made before source
            # items with that name were refused): the item is copied again.
            if (item := found.get(self.key_id(key))) and "B" in item.get(DIGEST_ATTRIBUTE, {})
            else None
            for key in keys
        ]

    def key_id(self, key: Item) -> KeyId:
        """A key as a hashable value, to match BatchGetItem's answers (in no order) to keys."""
        return tuple(
            (name, kind, raw) for name in self.key_attributes for kind, raw in key[name].items()
        )

    def read(self, keys: Sequence[Item], attributes: Sequence[str]) -> dict[KeyId, Item]:
        """The items of ``keys`` that exist, with their keys and ``attributes`` only, by
        :meth:`key_id`: BatchGetItem, strongly consistent, up to ``read_concurrency``
        (READ_CONCURRENCY) requests at once, unprocessed keys retried with backoff. With the
        lean client, the requests are in flight together from this thread (as a page's Decrypts
        are); with botocore's, on threads."""
        batches = [keys[i : i + GET_BATCH_SIZE] for i in range(0, len(keys), GET_BATCH_SIZE)]
        many = getattr(self._client, "batch_get_item_many", None) or self._batch_get_on_threads
        return self._read_many(many, batches, attributes)

    def _batch_get_on_threads(
        self, requests: Sequence[dict[str, Any]], concurrency: int
    ) -> list[Any]:
        """botocore's client: one BatchGetItem a thread (raises the first error)."""
        return map_concurrently(
            lambda request: self._client.batch_get_item(RequestItems=request),
            requests,
            concurrency,
            "read",
        )

    def _get_request(self, keys: Sequence[Item], attributes: Sequence[str]) -> dict[str, Any]:
        names = {f"#k{i}": name for i, name in enumerate((*self.key_attributes, *attributes))}
        return {
            "Keys": list(keys),
            "ConsistentRead": True,
            "ProjectionExpression": ", ".join(names),
            "ExpressionAttributeNames": names,
        }

    def _read_many(
        self,
        many: Callable[..., list[Any]],
        batches: list[Sequence[Item]],
        attributes: Sequence[str],
    ) -> dict[KeyId, Item]:
        """Every batch's BatchGetItem in flight at once, in rounds: a round sends what is left
        (unprocessed keys, or a batch whose answer was damaged: no Responses, never "none
        found"), after a backoff."""
        found: dict[KeyId, Item] = {}
        pending = list(batches)
        for attempt in range(1, self._max_attempts + 1):
            with self._getting():
                requests = [{self.table_name: self._get_request(k, attributes)} for k in pending]
                answers = many(requests, self._read_concurrency)
                for answer in answers:
                    if isinstance(answer, Exception):
                        raise answer
            left: list[Sequence[Item]] = []
            for keys, answer in zip(pending, answers, strict=True):
                if "Responses" not in answer:
                    left.append(keys)
                    continue
                for item in answer["Responses"].get(self.table_name, []):
                    found[self.key_id(item)] = item
                if unprocessed := answer.get("UnprocessedKeys", {}).get(self.table_name):
                    left.append(unprocessed["Keys"])
            if not (pending := left):
                return found
            if attempt < self._max_attempts:
                self._sleep(
                    backoff_delay(attempt, self._backoff_base, self._backoff_cap, self._rng)
                )
        raise DestinationError(
            f"BatchGetItem from {self.table_name}: {sum(map(len, pending))} key(s) still "
            f"unprocessed or unanswered after {self._max_attempts} attempts"
        )

    def _getting(self) -> Any:
        return translated(
            DestinationError,
            f"BatchGetItem from {self.table_name}",
            hints=dict.fromkeys(
                ("AccessDeniedException", "403"),
                f" (the function's role needs dynamodb:BatchGetItem on {self.table_name})",
            ),
        )

    def write(self, items: Sequence[Item], digests: Sequence[bytes] | None = None) -> int:
        puts, units = self.as_written(items, digests)
        self.write_batches(puts)
        return units

    def remove(self, keys: Sequence[Item]) -> int:
        self.write_batches(keys, delete=True)
        return len(keys)  # a unit each, as the sweep's deletes count (one over 1 KB costs more)

    def as_written(
        self, items: Sequence[Item], digests: Sequence[bytes] | None
    ) -> tuple[list[Item], int]:
        """The items as they are put (each with its digest, where it fits), and the write units
        the puts use (one per KB, rounded up, of each item)."""
        puts: list[Item] = []
        units = 0
        for index, item in enumerate(items):
            if digests is not None:
                put, size = self._with_digest(item, digests[index])
            else:
                put, size = item, item_size(item)
            puts.append(put)
            units += -(-size // 1024)
        return puts, units

    def _with_digest(self, item: Item, digest: bytes) -> tuple[Item, int]:
        """The item with its digest, written in the same put, so a copy and its digest never
        disagree; unless the digest would take the item over the item size limit: then as it
        is (never counted unchanged, so re-decrypted and rewritten every run). With its size."""
        size = item_size(item)
        if size + DIGEST_BYTES_IN_ITEM <= BOOKKEEPING_SIZE_LIMIT:
            return {**item, DIGEST_ATTRIBUTE: {"B": digest}}, size + DIGEST_BYTES_IN_ITEM
        logger.warning(
            "item written without its digest: it is too close to the item size limit, so "
            "every run copies it again",
            extra={"item": describe_key(item, self.key_attributes), "item_bytes": size},
        )
        return item, size

    def write_batches(self, items: Sequence[Item], *, delete: bool = False) -> None:
        """Every item, in requests of 25, up to ``concurrency`` at once; raises the first error
        after the other requests have finished (a page is checkpointed only once all are in)."""
        batches = [items[i : i + BATCH_SIZE] for i in range(0, len(items), BATCH_SIZE)]
        map_concurrently(
            lambda batch: self._write_batch(batch, delete=delete),
            batches,
            self._concurrency,
            "write",
        )

    def finalize(
        self,
        states: Sequence[SinkState],
        *,
        started_at: datetime,
        finished_at: datetime,
        source: SourceKeys | None = None,
    ) -> Finalized:
        """A mirror (``source`` given: SWEEP_DELETES) deletes what the source no longer holds
        (see :meth:`sweep`)."""
        return Finalized(items_swept=self.sweep(source) if source is not None else 0)

    def sweep(self, source: SourceKeys, *, delete: bool = True) -> int:
        """Delete from the copy every item the source no longer holds. The copy's keys are
        scanned (keys only, page by page) and compared with the keys the run's scan saw; a key
        it did not see is looked up in the source (a strongly consistent GetItem) and deleted
        only if the source no longer holds it, so an item still there is never deleted, whatever
        happened to it in this run (quarantined, written after the scan passed it). No write for
        an unchanged item; the seen keys cost 8 bytes each in memory, and a run that saw more
        than fit in :data:`~table_sync.source_keys.SWEEP_MEMORY_BYTES` sweeps in parts.
        ``delete=False`` (a dry run) counts what would be deleted. A page's unseen keys are
        confirmed and deleted on a thread of their own while the next page's keys are hashed,
        one page at a time (so at most two pages' unseen keys are held)."""

        def settle(unseen: list[Item]) -> int:
            gone = source.absent(unseen)
            if delete:
                self.write_batches(gone, delete=True)
            return len(gone)

        swept = 0
        with ThreadPoolExecutor(1, thread_name_prefix="settle") as settler:
            settling: Future[int] | None = None
            for unseen in self.unseen(source):
                if not unseen:
                    continue
                if settling is not None:
                    swept += settling.result()
                settling = settler.submit(settle, unseen)
            if settling is not None:
                swept += settling.result()
        return swept

    def unseen(
        self, source: SourceKeys, attributes: Sequence[str] = (), *, what: str = ""
    ) -> Iterator[list[Item]]:
        """For each page of a scan of this table (keys and ``attributes`` only), its items
        whose keys the run's scan did not see; in ``source.parts`` passes, each holding the
        seen hashes of one part of the keys. ``what`` names the table in errors."""
        parts = source.parts
        for part in range(parts):
            seen = source.seen(part, parts)
            for page in self._key_pages(attributes, what):
                yield [
                    item
                    for item in page.items
                    if (h := key_hash(key_of(item, self.key_attributes))) % parts == part
                    and not _in_sorted(seen, h)
                ]

    def _key_pages(self, attributes: Sequence[str], what: str) -> Iterator[ScanPage]:
        """This table's pages (keys and ``attributes`` only), as SWEEP_SEGMENTS segments of a
        parallel scan read side by side, each one page ahead of the caller; in the order they
        arrive. A segment's failure is raised once the pages read meanwhile have arrived."""
        segments = [
            scan_pages(
                self._client,
                self.table_name,
                attributes=(*self.key_attributes, *attributes),
                failure=(DestinationError, f"{what}sweep of {self.table_name}"),
                sleep=self._sleep,
                segment=segment,
                total_segments=SWEEP_SEGMENTS,
            )
            for segment in range(SWEEP_SEGMENTS)
        ]
        with ThreadPoolExecutor(SWEEP_SEGMENTS, thread_name_prefix="sweep") as reader:
            reading: dict[Future[ScanPage | None], Iterator[ScanPage]] = {
                reader.submit(next, pages, None): pages for pages in segments
            }
            while reading:
                arrived, _ = wait(reading, return_when=FIRST_COMPLETED)
                for future in arrived:
                    pages = reading.pop(future)
                    page = future.result()
                    if page is not None:
                        reading[reader.submit(next, pages, None)] = pages
                        yield page

    def _write_batch(self, items: Sequence[Item], *, delete: bool = False) -> None:
        requests: list[Any] = [
            {"DeleteRequest": {"Key": item}} if delete else {"PutRequest": {"Item": item}}
            for item in items
        ]
        for attempt in range(1, self._max_attempts + 1):
            # The code only: botocore's and DynamoDB's messages can quote decrypted values.
            with translated(
                DestinationError,
                f"BatchWriteItem to {self.table_name}",
                hints={"ParamValidationError": " (an item is not valid DynamoDB JSON)"},
                values_in_request=True,
            ):
                # DynamoDB always answers with UnprocessedItems ({} when none): an answer without
                # it (a body cut short, or a proxy's page) is damaged, never "all written".
                response = until_undamaged(
                    lambda requests=requests: require(  # type: ignore[misc]
                        self._client.batch_write_item(RequestItems={self.table_name: requests}),
                        "UnprocessedItems",
                    ),
                    self._sleep,
                )
            unprocessed = response.get("UnprocessedItems", {}).get(self.table_name, [])
            if not delete:
                with self._lock:
                    self.items_written += len(requests) - len(unprocessed)
            if not unprocessed:
                return
            requests = list(unprocessed)
            if attempt < self._max_attempts:
                with self._lock:
                    self.retries += 1
                self._sleep(
                    backoff_delay(attempt, self._backoff_base, self._backoff_cap, self._rng)
                )
        keys = [
            describe_key(
                r["PutRequest"]["Item"] if "PutRequest" in r else r["DeleteRequest"]["Key"],
                self.key_attributes,
            )
            for r in requests
        ]
        raise UnprocessedItemsError(self.table_name, keys, self._max_attempts)
