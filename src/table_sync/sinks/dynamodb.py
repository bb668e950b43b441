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
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, Any

from table_sync.aws.errors import translated
from table_sync.errors import DestinationError, UnprocessedItemsError
from table_sync.items import BOOKKEEPING_SIZE_LIMIT, Item, describe_key, item_size, value_size
from table_sync.observability import logger
from table_sync.sinks.base import Finalized, SinkState

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from table_sync.aws.dynamodb import SourceTable

BATCH_SIZE = 25  # BatchWriteItem's limit
# With SWEEP_DELETES, every copied item carries the id of the run that last wrote it.
MARK_ATTRIBUTE = "_table_sync_run"


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
        mark: str | None = None,
        concurrency: int = 1,
    ) -> None:
        self._client = client
        self._concurrency = concurrency
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
        self._mark = mark
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

    def write(self, items: Sequence[Item]) -> None:
        if self._mark:
            items = [self._marked(item) for item in items]
        self._write_batches(items)

    def _marked(self, item: Item) -> Item:
        """The item with the run's mark, unless the mark would take it over the item size limit:
        then as it is, and the sweep keeps it because the source still holds it."""
        mark = {"S": self._mark or ""}
        size = item_size(item)
        if size + len(MARK_ATTRIBUTE) + value_size(mark) <= BOOKKEEPING_SIZE_LIMIT:
            return {**item, MARK_ATTRIBUTE: mark}
        logger.warning(
            "item written without the sweep mark: it is too close to the item size limit",
            extra={"item": describe_key(item, self.key_attributes), "item_bytes": size},
        )
        return item

    def _write_batches(self, items: Sequence[Item], *, delete: bool = False) -> None:
        """Every item, in requests of 25, up to ``concurrency`` at once; raises the first error
        after the other requests have finished (a page is checkpointed only once all are in)."""
        batches = [items[i : i + BATCH_SIZE] for i in range(0, len(items), BATCH_SIZE)]
        if self._concurrency == 1 or len(batches) < 2:
            for batch in batches:
                self._write_batch(batch, delete=delete)
            return
        workers = min(self._concurrency, len(batches))
        with ThreadPoolExecutor(workers, thread_name_prefix="write") as pool:
            futures = [pool.submit(self._write_batch, batch, delete=delete) for batch in batches]
        for future in futures:
            future.result()

    def finalize(
        self,
        states: Sequence[SinkState],
        *,
        started_at: datetime,
        finished_at: datetime,
        source: SourceTable | None = None,
    ) -> Finalized:
        """With SWEEP_DELETES, delete what the run did not write and the source no longer
        holds (see :meth:`sweep`)."""
        if not self._mark:
            return Finalized()
        if source is None:
            raise DestinationError("the sweep needs the source table to confirm deletions")
        return Finalized(items_swept=self.sweep(self._mark, source))

    def sweep(self, run_id: str, source: SourceTable) -> int:
        """Mark and sweep: after a complete run every item it wrote carries its run id. Any
        other item is a candidate: deleted from the source since an earlier run, or still there
        but not written by this one (quarantined, or too big for the mark). Each candidate is
        looked up in the source, and only those it no longer holds are deleted. A filtered
        Scan, page by page, so it works for tables larger than memory."""
        paginator = self._client.get_paginator("scan")
        names = {f"#k{i}": name for i, name in enumerate(self.key_attributes)}
        pages = paginator.paginate(
            TableName=self.table_name,
            ProjectionExpression=", ".join(names),
            FilterExpression="attribute_not_exists(#m) OR #m <> :run",
            ExpressionAttributeNames={**names, "#m": MARK_ATTRIBUTE},
            ExpressionAttributeValues={":run": {"S": run_id}},
        )
        swept = 0
        with translated(DestinationError, f"sweep of {self.table_name}"):
            for page in pages:
                keys = source.absent(page.get("Items", []))
                self._write_batches(keys, delete=True)
                swept += len(keys)
        return swept

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
                response = self._client.batch_write_item(RequestItems={self.table_name: requests})
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
