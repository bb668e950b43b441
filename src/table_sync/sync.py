"""The pipeline: scan the source page by page, decrypt each page, write it, then finish the copy.

Plain functions over injected collaborators: the scan's DynamoDB client, a decryptor and a sink.
Each page is decrypted in full before any of it is written, so no half-decrypted item reaches the
destination, and only one page is held in memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from table_sync.aws.dynamodb import scan_pages
from table_sync.aws.kms import KmsDecrypter
from table_sync.formats.kms_attributes import KmsAttributeDecryptor
from table_sync.items import Item, describe_key
from table_sync.models import Invocation, Settings, SyncSummary
from table_sync.observability import logger
from table_sync.sinks import Sink

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class ItemNamer:
    """Names items in errors by their key: SOURCE_KEY_ATTRIBUTES, else the destination table's
    key, else the attributes of the scan's LastEvaluatedKey, else by position."""

    def __init__(self, key_attributes: tuple[str, ...]) -> None:
        self.key_attributes = key_attributes
        self.page = 0
        self.index = 0

    def learn(self, last_evaluated_key: Item | None) -> None:
        if not self.key_attributes and last_evaluated_key:
            self.key_attributes = tuple(sorted(last_evaluated_key))

    def __call__(self, item: Item) -> str:
        if self.key_attributes:
            return describe_key(item, self.key_attributes)
        return (
            f"#{self.index + 1} of page {self.page} (set SOURCE_KEY_ATTRIBUTES to name it by key)"
        )


@dataclass
class SyncContext:
    run_id: str
    invocation: Invocation
    assume_role_calls: Callable[[], int] = lambda: 0


def run_sync(
    settings: Settings,
    context: SyncContext,
    *,
    source: DynamoDBClient,
    kms: KmsDecrypter,
    sink: Sink,
    clock: Callable[[], float] = time.monotonic,
) -> SyncSummary:
    started_at = datetime.now(UTC)
    started = clock()
    sink.prepare()
    namer = ItemNamer(settings.source_key_attributes or sink.key_attributes)
    decryptor = KmsAttributeDecryptor(kms, settings.encrypted_attributes, namer)
    scanned = decrypted_items = decrypted_attributes = pages = 0
    for page in scan_pages(source, settings.source_table_name, page_size=settings.page_size):
        pages += 1
        namer.page = pages
        copies = []
        for namer.index, item in enumerate(page.items):
            result = decryptor.decrypt_item(item)
            copies.append(result.item)
            decrypted_attributes += result.attributes_decrypted
            decrypted_items += 1 if result.attributes_decrypted else 0
        sink.write(copies)
        scanned += len(page.items)
        namer.learn(page.last_evaluated_key)
        logger.info(
            "page copied",
            extra={
                "run_id": context.run_id,
                "page": pages,
                "items": len(page.items),
                "items_scanned": scanned,
                "kms_requests": kms.requests,
                "consumed_read_capacity": page.consumed_capacity,
            },
        )
    finished_at = datetime.now(UTC)
    sink.finish(started_at=started_at, finished_at=finished_at)
    return SyncSummary(
        run_id=context.run_id,
        trigger=context.invocation.trigger,
        event_id=context.invocation.event_id,
        dry_run=settings.dry_run,
        source_table=settings.source_table_arn,
        destination=settings.destination.uri,
        location=sink.location,
        items_scanned=scanned,
        items_decrypted=decrypted_items,
        attributes_decrypted=decrypted_attributes,
        items_written=sink.items_written,
        pages=pages,
        kms_requests=kms.requests,
        assume_role_calls=context.assume_role_calls(),
        seconds=round(clock() - started, 3),
        started_at=started_at,
        finished_at=finished_at,
    )
