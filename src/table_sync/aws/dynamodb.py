"""Reading the source table: Scan, one page at a time (the seed's ``aws dynamodb scan``).

Only ``dynamodb:Scan`` is called here, so the source role needs nothing the seed does not grant.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from table_sync.aws.errors import translated
from table_sync.errors import SourceAccessError
from table_sync.items import Item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


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
) -> Iterator[ScanPage]:
    """Yield the table's pages in order, following LastEvaluatedKey; one page in memory at a time."""
    kwargs: dict[str, Any] = {
        "TableName": table_name,
        "ReturnConsumedCapacity": "TOTAL",
        "ConsistentRead": consistent_read,
    }
    if page_size:
        kwargs["Limit"] = page_size
    if total_segments is not None and segment is not None:
        kwargs["Segment"] = segment
        kwargs["TotalSegments"] = total_segments
    start_key = exclusive_start_key
    while True:
        if start_key:
            kwargs["ExclusiveStartKey"] = start_key
        with translated(
            SourceAccessError,
            f"scan of source table {table_name}",
            hints={
                "ResourceNotFoundException": ". Does SOURCE_TABLE_NAME name a table in the "
                "source account and region?"
            },
        ):
            response = client.scan(**kwargs)
        start_key = response.get("LastEvaluatedKey")
        yield ScanPage(
            items=response.get("Items", []),
            last_evaluated_key=start_key,
            consumed_capacity=float(response.get("ConsumedCapacity", {}).get("CapacityUnits", 0)),
        )
        if not start_key:
            return
