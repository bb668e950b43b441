"""The pipeline: scan the source page by page, decrypt each page, write it, then finish the copy.

Plain functions over injected collaborators: the scan's DynamoDB client, a KMS decrypter, a sink
and a quarantine store. Items of a page are decrypted concurrently (DECRYPT_CONCURRENCY), each
in full before the page is written, so no half-decrypted item reaches the destination, and only
one page is held in memory. An item that cannot be decrypted is quarantined (or fails the run
with ON_DECRYPT_ERROR=fail); a failure that is not the item's own always fails the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from table_sync.aws.dynamodb import scan_pages
from table_sync.aws.kms import ACCESS_DENIED, KmsDecrypter
from table_sync.errors import DecryptError
from table_sync.formats import AttributeDecryptFailed, DecodedItem, ItemDecoder, build_decoder
from table_sync.formats.base import ITEM_FAILURES
from table_sync.items import Item, describe_key, key_of
from table_sync.models import Invocation, Settings, SyncSummary
from table_sync.observability import logger
from table_sync.quarantine import QuarantineRecord, QuarantineStore, now
from table_sync.sinks import Sink

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class ItemNamer:
    """Names items in errors by their key: SOURCE_KEY_ATTRIBUTES, else the destination table's
    key, else the attributes of the scan's LastEvaluatedKey, else by position."""

    def __init__(self, key_attributes: tuple[str, ...]) -> None:
        self.key_attributes = key_attributes

    def learn(self, last_evaluated_key: Item | None) -> None:
        if not self.key_attributes and last_evaluated_key:
            self.key_attributes = tuple(sorted(last_evaluated_key))

    def name(self, item: Item, page: int, index: int) -> str:
        if self.key_attributes:
            return describe_key(item, self.key_attributes)
        return f"#{index + 1} of page {page} (set SOURCE_KEY_ATTRIBUTES to name it by key)"

    def key(self, item: Item) -> Item | None:
        return key_of(item, self.key_attributes) if self.key_attributes else None


@dataclass(frozen=True)
class Progress:
    """Where a run is, after each page (for the CLI's progress bar)."""

    pages: int
    items_scanned: int
    items_quarantined: int
    kms_requests: int
    kms_cache_hits: int
    seconds: float


@dataclass
class SyncContext:
    run_id: str
    invocation: Invocation
    assume_role_calls: Callable[[], int] = lambda: 0


def _decode(decoder: ItemDecoder, item: Item) -> DecodedItem | AttributeDecryptFailed:
    try:
        return decoder.decode(item)
    except AttributeDecryptFailed as failure:
        return failure


def run_sync(
    settings: Settings,
    context: SyncContext,
    *,
    source: DynamoDBClient,
    kms: KmsDecrypter,
    sink: Sink,
    quarantine: QuarantineStore | None = None,
    clock: Callable[[], float] = time.monotonic,
    on_page: Callable[[Progress], None] | None = None,
) -> SyncSummary:
    started_at = datetime.now(UTC)
    started = clock()
    sink.prepare()
    namer = ItemNamer(settings.source_key_attributes or sink.key_attributes)
    decoder = build_decoder(settings, kms, namer.key_attributes)
    scanned = decrypted_items = decrypted_attributes = quarantined = pages = 0
    with ThreadPoolExecutor(settings.decrypt_concurrency, thread_name_prefix="decrypt") as pool:
        pages_of_table = scan_pages(
            source,
            settings.source_table_name,
            page_size=settings.page_size,
            segment=settings.segment,
            total_segments=settings.total_segments,
        )
        for page in pages_of_table:
            pages += 1
            results = list(pool.map(lambda item: _decode(decoder, item), page.items))
            copies: list[Item] = []
            records: list[QuarantineRecord] = []
            for index, (item, result) in enumerate(zip(page.items, results, strict=True)):
                if isinstance(result, DecodedItem):
                    copies.append(result.item)
                    decrypted_attributes += result.attributes_decrypted
                    decrypted_items += 1 if result.attributes_decrypted else 0
                    continue
                error = DecryptError(
                    item=namer.name(item, pages, index),
                    attribute=result.attribute,
                    kind=result.kind,
                    detail=result.detail,
                )
                if not _item_specific(result, kms) or quarantine is None:
                    raise error from result
                records.append(
                    QuarantineRecord(
                        run_id=context.run_id,
                        source_table=settings.source_table_arn,
                        item=error.item,
                        key=namer.key(item),
                        attribute=error.attribute,
                        error=error.kind,
                        detail=result.detail,
                        page=pages,
                        quarantined_at=now(),
                    )
                )
            sink.write(copies)
            if records and quarantine is not None and not settings.dry_run:
                quarantine.add(records)
            quarantined += len(records)
            scanned += len(page.items)
            namer.learn(page.last_evaluated_key)
            logger.info(
                "page copied",
                extra={
                    "page": pages,
                    "items": len(page.items),
                    "items_quarantined": len(records),
                    "items_scanned": scanned,
                    "kms_requests": kms.requests,
                    "kms_cache_hits": kms.cache_hits,
                    "consumed_read_capacity": page.consumed_capacity,
                },
            )
            if on_page is not None:
                on_page(
                    Progress(
                        pages, scanned, quarantined, kms.requests, kms.cache_hits, clock() - started
                    )
                )
            for record in records:
                logger.warning(
                    "item quarantined",
                    extra={
                        "item": record.item,
                        "attribute": record.attribute,
                        "error": record.error,
                    },
                )
    finished_at = datetime.now(UTC)
    sink.finish(started_at=started_at, finished_at=finished_at)
    return SyncSummary(
        run_id=context.run_id,
        trigger=context.invocation.trigger,
        event_id=context.invocation.event_id,
        dry_run=settings.dry_run,
        item_format=settings.item_format,
        source_table=settings.source_table_arn,
        destination=settings.destination.uri,
        location=sink.location,
        quarantine=quarantine.location if quarantine and quarantined else None,
        items_scanned=scanned,
        items_decrypted=decrypted_items,
        attributes_decrypted=decrypted_attributes,
        items_written=sink.items_written,
        items_quarantined=quarantined,
        pages=pages,
        segment=settings.segment,
        total_segments=settings.total_segments,
        kms_requests=kms.requests,
        kms_cache_hits=kms.cache_hits,
        assume_role_calls=context.assume_role_calls(),
        seconds=round(clock() - started, 3),
        started_at=started_at,
        finished_at=finished_at,
    )


def _item_specific(failure: AttributeDecryptFailed, kms: KmsDecrypter) -> bool:
    """Whether a failure belongs to the item. AccessDenied does only when this key has decrypted
    something else in this run; otherwise the role or key policy is wrong for every item."""
    if failure.kind in ACCESS_DENIED:
        return kms.successes > 0
    return failure.kind in ITEM_FAILURES
