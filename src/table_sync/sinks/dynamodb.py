"""Destination ``dynamodb://<table>``: BatchWriteItem, 25 puts a request.

Unlike boto3's BatchWriter, which resends UnprocessedItems at once and forever, this retries
them with capped exponential backoff and full jitter, and after the last attempt fails the run
naming every key that was not written. Throttling errors on the whole request are retried by
botocore's standard retry mode, configured on the client.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError, ParamValidationError

from table_sync.errors import DestinationError, UnprocessedItemsError
from table_sync.items import Item, describe_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

BATCH_SIZE = 25  # BatchWriteItem's limit


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
    ) -> None:
        self._client = client
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

    def prepare(self) -> None:
        try:
            table = self._client.describe_table(TableName=self.table_name)["Table"]
        except ClientError as exc:
            raise DestinationError(
                f"destination table {self.table_name}: {_code(exc)}"
                + (
                    " (create it, or fix DESTINATION)"
                    if _code(exc) == "ResourceNotFoundException"
                    else ""
                )
            ) from exc
        if table.get("TableStatus") not in ("ACTIVE", "UPDATING"):
            raise DestinationError(
                f"destination table {self.table_name} is {table.get('TableStatus')}, not ACTIVE"
            )
        schema = sorted(table["KeySchema"], key=lambda k: k["KeyType"] != "HASH")
        self.key_attributes = tuple(k["AttributeName"] for k in schema)
        self.location = table["TableArn"]

    def write(self, items: Sequence[Item]) -> None:
        for start in range(0, len(items), BATCH_SIZE):
            self._write_batch(items[start : start + BATCH_SIZE])

    def finish(self, *, started_at: datetime, finished_at: datetime) -> None:
        return None

    def _write_batch(self, items: Sequence[Item]) -> None:
        requests: list[Any] = [{"PutRequest": {"Item": item}} for item in items]
        for attempt in range(1, self._max_attempts + 1):
            try:
                response = self._client.batch_write_item(RequestItems={self.table_name: requests})
            except ClientError as exc:
                # The code only: a message could quote an item's (decrypted) values.
                raise DestinationError(
                    f"BatchWriteItem to {self.table_name} failed: {_code(exc)}"
                ) from None
            except ParamValidationError:
                raise DestinationError(
                    f"BatchWriteItem to {self.table_name}: an item is not valid DynamoDB JSON"
                ) from None
            unprocessed = response.get("UnprocessedItems", {}).get(self.table_name, [])
            self.items_written += len(requests) - len(unprocessed)
            if not unprocessed:
                return
            requests = list(unprocessed)
            if attempt < self._max_attempts:
                self.retries += 1
                self._sleep(
                    backoff_delay(attempt, self._backoff_base, self._backoff_cap, self._rng)
                )
        keys = [describe_key(r["PutRequest"]["Item"], self.key_attributes) for r in requests]
        raise UnprocessedItemsError(self.table_name, keys, self._max_attempts)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))
