"""Reading the source table: Scan, one page at a time (the seed's ``aws dynamodb scan``).

Only ``dynamodb:Scan`` and, to confirm a deletion from the copy, ``dynamodb:GetItem`` are called
here, so the source role needs nothing the seed does not grant.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from table_sync.aws.errors import DAMAGED_ATTEMPTS, require, translated, until_undamaged
from table_sync.concurrency import map_concurrently
from table_sync.errors import SourceAccessError, TableSyncError
from table_sync.items import Item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


# A Scan answer without Items and Count is damaged (an HTML page from a proxy, a body cut short
# that botocore's CRC32 check retried and gave up on): never the table's end. It is asked for
# again (aws.errors.until_undamaged), and then the run fails.
REQUIRED_SCAN_MEMBERS = ("Items", "Count")


@dataclass(frozen=True)
class ScanPage:
    items: list[Item]
    last_evaluated_key: Item | None
    consumed_capacity: float


def scan_pages(
    client: DynamoDBClient,
    table_name: str,
    *,
    page_size: int | None = None,
    exclusive_start_key: Item | None = None,
    consistent_read: bool = False,
    segment: int | None = None,
    total_segments: int | None = None,
    region: str = "the source account and region",
    sleep: Callable[[float], None] = time.sleep,
    attributes: Sequence[str] | None = None,
    failure: tuple[type[TableSyncError], str] | None = None,
) -> Iterator[ScanPage]:
    """Yield the table's pages in order, following LastEvaluatedKey; one page in memory at a time.
    ``region`` says, for a table not found, where it was looked for. ``attributes``: only
    these (the key's included) in each item. ``failure``: the error and the words for what
    failed, for a table that is not the source (a copy's sweep)."""
    kwargs: dict[str, Any] = {
        "TableName": table_name,
        "ReturnConsumedCapacity": "TOTAL",
        "ConsistentRead": consistent_read,
    }
    if attributes is not None:
        names = {f"#k{i}": name for i, name in enumerate(attributes)}
        kwargs["ProjectionExpression"] = ", ".join(names)
        kwargs["ExpressionAttributeNames"] = names
    if page_size:
        kwargs["Limit"] = page_size
    if total_segments is not None and segment is not None:
        kwargs["Segment"] = segment
        kwargs["TotalSegments"] = total_segments
    start_key = exclusive_start_key
    while True:
        if start_key:
            kwargs["ExclusiveStartKey"] = start_key
        response = _scan_page(client, kwargs, table_name, region, sleep, failure)
        start_key = response.get("LastEvaluatedKey")
        yield ScanPage(
            items=response.get("Items", []),
            last_evaluated_key=start_key,
            consumed_capacity=float(response.get("ConsumedCapacity", {}).get("CapacityUnits", 0)),
        )
        if not start_key:
            return


def _scan_page(
    client: DynamoDBClient,
    kwargs: dict[str, Any],
    table_name: str,
    region: str,
    sleep: Callable[[float], None],
    failure: tuple[type[TableSyncError], str] | None,
) -> Any:
    """One Scan page, asked for again while the answer is damaged (no Items or Count)."""
    hints = {
        "DamagedResponse": f" (no Items or Count, {DAMAGED_ATTEMPTS} times): not taken as "
        "the end of the table",
    }
    if failure is None:
        failure = (SourceAccessError, f"scan of source table {table_name}")
        hints["ResourceNotFoundException"] = f": SOURCE_TABLE_NAME names no table in {region}"
    with translated(*failure, hints=hints):
        return until_undamaged(
            lambda: require(client.scan(**kwargs), *REQUIRED_SCAN_MEMBERS), sleep
        )


@dataclass(frozen=True)
class SourceTable:
    """The source, asked whether items are still in it: before anything is deleted from the
    copy, each candidate's key is read back with a strongly consistent GetItem (one of the
    runbook's actions), projecting the key alone. A key the source still holds is never deleted,
    whatever the run did with the item (quarantined, unmarked, written after the scan passed)."""

    client: DynamoDBClient
    table_name: str
    concurrency: int = 8

    def absent(self, keys: Sequence[Item]) -> list[Item]:
        """The keys of ``keys`` that have no item in the source now, in order."""
        found = map_concurrently(self._exists, keys, self.concurrency, "confirm")
        return [key for key, exists in zip(keys, found, strict=True) if not exists]

    def _exists(self, key: Item) -> bool:
        names = {f"#k{i}": name for i, name in enumerate(key)}
        with translated(
            SourceAccessError,
            f"GetItem on source table {self.table_name} (confirming a deletion)",
            hints=dict.fromkeys(
                ("AccessDeniedException", "403"), ": the source role needs dynamodb:GetItem"
            ),
        ):
            response = self.client.get_item(
                TableName=self.table_name,
                Key=key,
                ConsistentRead=True,
                ProjectionExpression=", ".join(names),
                ExpressionAttributeNames=names,
            )
        return "Item" in response
