"""Where items that cannot be decrypted go instead of the copy: their key, attribute and error
kind, never a value. The run goes on and counts them; ON_DECRYPT_ERROR=fail stops it instead.

A quarantined item is simply not written; the next run scans it again, so once the cause is
fixed (a re-encrypted value, the right key or context) it is copied like any other item.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict

from table_sync.aws.clients import caller_client
from table_sync.aws.errors import translated
from table_sync.errors import DestinationError
from table_sync.items import Item, to_json_item
from table_sync.models import DynamoDBDestination, Settings
from table_sync.sinks.s3 import sse_arguments

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

RETENTION = timedelta(days=90)


class QuarantineRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    run_id: str
    source_table: str
    item: str  # the item's key as text, e.g. {pk=S:"customer#1"}
    key: Item | None  # the key attributes in DynamoDB JSON, when the key is known
    attribute: str
    error: str  # an error kind: an AWS error code, HmacMismatch, InvalidBase64, ...
    detail: str
    page: int
    quarantined_at: datetime
    segment: int = 0


class QuarantineStore(Protocol):
    @property
    def location(self) -> str: ...

    def add(self, records: Sequence[QuarantineRecord]) -> None: ...


class DynamoDBQuarantine:
    """A table keyed by ``item`` (HASH) and ``run_id`` (RANGE), expiring by TTL on ``expires_at``."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self.table_name = table_name

    @property
    def location(self) -> str:
        return f"dynamodb://{self.table_name}"

    def add(self, records: Sequence[QuarantineRecord]) -> None:
        for record in records:
            item: dict[str, Any] = {
                "item": {"S": record.item},
                "run_id": {"S": record.run_id},
                "source_table": {"S": record.source_table},
                "attribute": {"S": record.attribute},
                "error": {"S": record.error},
                "detail": {"S": record.detail or "-"},
                "segment": {"N": str(record.segment)},
                "page": {"N": str(record.page)},
                "quarantined_at": {"S": record.quarantined_at.isoformat()},
                "expires_at": {"N": str(int((record.quarantined_at + RETENTION).timestamp()))},
            }
            if record.key:
                item["key"] = {"M": record.key}
            with translated(
                DestinationError, f"recording quarantined item {record.item} in {self.table_name}"
            ):
                self._client.put_item(TableName=self.table_name, Item=item)


class S3Quarantine:
    """One JSON Lines object per segment and page with quarantined items, under
    ``<prefix>/<run-id>/segment-<n>-page-<n>.jsonl``: unique in the run, and rewritten as it was
    when a page is repeated after a crash."""

    def __init__(
        self, client: S3Client, bucket: str, prefix: str, run_id: str, sse: dict[str, Any]
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._base = "/".join(p for p in (prefix.strip("/"), run_id) if p)
        self._sse = sse

    @property
    def location(self) -> str:
        return f"s3://{self._bucket}/{self._base}/"

    def add(self, records: Sequence[QuarantineRecord]) -> None:
        if not records:
            return
        body = "".join(
            json.dumps(
                {**r.model_dump(mode="json"), "key": to_json_item(r.key) if r.key else None},
                separators=(",", ":"),
            )
            + "\n"
            for r in records
        ).encode()
        first = records[0]
        key = f"{self._base}/segment-{first.segment:05d}-page-{first.page:06d}.jsonl"
        with translated(
            DestinationError,
            lambda code: f"cannot write quarantine s3://{self._bucket}/{key}: {code}",
        ):
            self._client.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=body,
                ContentType="application/x-ndjson",
                **self._sse,
            )


def now() -> datetime:
    return datetime.now(UTC)


def build_quarantine(
    settings: Settings, destination: boto3.Session, run_id: str
) -> QuarantineStore | None:
    """QUARANTINE's store (or the default beside an S3 destination); None when failing fast."""
    target = settings.quarantine_target
    if target is None:
        return None
    if isinstance(target, DynamoDBDestination):
        return DynamoDBQuarantine(caller_client(destination, "dynamodb"), target.table_name)
    return S3Quarantine(
        caller_client(destination, "s3"),
        target.bucket,
        target.prefix,
        run_id,
        sse_arguments(settings.destination_kms_key_arn),
    )
