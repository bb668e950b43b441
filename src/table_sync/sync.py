"""The pipeline: scan the source page by page, decrypt each page, write it, then finish the copy.

Plain functions over injected collaborators: the scan's DynamoDB client, a KMS decrypter, a
sink, a quarantine store and (for runs longer than one invocation) a state store. Items of a
page are decrypted concurrently (DECRYPT_CONCURRENCY), each in full before the page is written,
so no half-decrypted item reaches the destination, and only one page is held in memory. An item
that cannot be decrypted is quarantined (or fails the run with ON_DECRYPT_ERROR=fail); a failure
that is not the item's own always fails the run.

With a state store, a segment's progress is checkpointed after each page that reached the
destination, and before the invocation's remaining time runs short the segment saves its place
and returns ``continue``; the next invocation of the same run and segment resumes there.
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
from table_sync.errors import DecryptError, DestinationError
from table_sync.formats import AttributeDecryptFailed, DecodedItem, ItemDecoder, build_decoder
from table_sync.formats.base import ITEM_FAILURES
from table_sync.items import Item, describe_key, key_of
from table_sync.models import Invocation, Settings, SyncSummary
from table_sync.observability import logger
from table_sync.quarantine import QuarantineRecord, QuarantineStore, now
from table_sync.sinks import Sink
from table_sync.state import Checkpoint, StateStore

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
    state: StateStore | None = None
    # The invocation's remaining time in milliseconds (the Lambda context's), when it has a limit.
    remaining_ms: Callable[[], int] | None = None


class ReadBudget:
    """READ_CAPACITY_PER_SECOND: after each page, wait until the read capacity consumed so far
    (ReturnConsumedCapacity) is within the budget for the time elapsed."""

    def __init__(
        self, per_second: float, clock: Callable[[], float], sleep: Callable[[float], None]
    ) -> None:
        self._per_second = per_second
        self._clock = clock
        self._sleep = sleep
        self._start = clock()
        self.consumed = 0.0
        self.waited = 0.0

    def consume(self, units: float) -> None:
        self.consumed += units
        ahead = self.consumed / self._per_second - (self._clock() - self._start)
        if ahead > 0:
            self.waited += ahead
            self._sleep(ahead)


def _decode(decoder: ItemDecoder, item: Item) -> DecodedItem | AttributeDecryptFailed:
    try:
        return decoder.decode(item)
    except AttributeDecryptFailed as failure:
        return failure


def decode_page(
    pool: ThreadPoolExecutor, decoder: ItemDecoder, items: list[Item], concurrency: int
) -> list[DecodedItem | AttributeDecryptFailed]:
    """Every item of a page decoded, in order, ``concurrency`` at a time. Items go to the pool
    in runs of several (``concurrency`` x 8 runs a page), not one by one: handing an item to a
    thread costs more CPU than decoding it when its ciphertexts are in the cache, and runs this
    short still keep every thread busy until the page's last few items."""
    size = max(1, -(-len(items) // (concurrency * 8)))
    runs = [items[start : start + size] for start in range(0, len(items), size)]
    results: list[DecodedItem | AttributeDecryptFailed] = []
    for decoded in pool.map(lambda run: [_decode(decoder, item) for item in run], runs):
        results.extend(decoded)
    return results


def run_sync(
    settings: Settings,
    context: SyncContext,
    *,
    source: DynamoDBClient,
    kms: KmsDecrypter,
    sink: Sink,
    quarantine: QuarantineStore | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    on_page: Callable[[Progress], None] | None = None,
) -> SyncSummary:
    """Copy one segment (the whole table when not segmented), or as much of it as the time
    budget allows; a single-segment run that reaches the end finishes the copy."""
    started = clock()
    segment, total = settings.segment or 0, settings.total_segments or 1
    state = context.state
    checkpoint = (state.load(context.run_id, segment) if state else None) or Checkpoint(
        run_id=context.run_id,
        segment=segment,
        total_segments=total,
        started_at=datetime.now(UTC).isoformat(),
    )
    kms_before = checkpoint.kms_requests
    sink.prepare()
    sink.restore(checkpoint.files)
    # Items written by earlier invocations that the sink does not count itself (an S3 sink
    # counts its restored files; a DynamoDB sink starts from zero).
    written_before = checkpoint.items_written - sink.items_written
    namer = ItemNamer(settings.source_key_attributes or sink.key_attributes)
    decoder = build_decoder(settings, kms, namer.key_attributes)
    budget = (
        ReadBudget(settings.read_capacity_per_second / total, clock, sleep)
        if settings.read_capacity_per_second
        else None
    )
    margin_ms = settings.resume_margin_seconds * 1000
    out_of_time = False

    def save() -> None:
        checkpoint.files = sink.files
        checkpoint.kms_requests = kms_before + kms.requests
        if state is not None:
            # Renew the lease with every checkpoint; a run whose lease lapsed and was taken over
            # must stop writing rather than race the new holder.
            lease = state.acquire_lease(
                settings.destination.uri, context.run_id, settings.lease_seconds
            )
            if not lease.held:
                raise DestinationError(
                    f"run {context.run_id} lost the lease on {settings.destination.uri} to run "
                    f"{lease.holder}; stopping without writing more"
                )
            state.save(checkpoint)

    with ThreadPoolExecutor(settings.decrypt_concurrency, thread_name_prefix="decrypt") as pool:
        pages_of_table = scan_pages(
            source,
            settings.source_table_name,
            page_size=settings.page_size,
            exclusive_start_key=checkpoint.last_evaluated_key,
            segment=settings.segment if total > 1 else None,
            total_segments=total if total > 1 else None,
        )
        for page in [] if checkpoint.done else pages_of_table:
            checkpoint.pages += 1
            results = decode_page(pool, decoder, page.items, settings.decrypt_concurrency)
            copies: list[Item] = []
            records: list[QuarantineRecord] = []
            for index, (item, result) in enumerate(zip(page.items, results, strict=True)):
                if isinstance(result, DecodedItem):
                    copies.append(result.item)
                    checkpoint.attributes_decrypted += result.attributes_decrypted
                    checkpoint.items_decrypted += 1 if result.attributes_decrypted else 0
                    continue
                error = DecryptError(
                    item=namer.name(item, checkpoint.pages, index),
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
                        page=checkpoint.pages,
                        quarantined_at=now(),
                    )
                )
            sink.write(copies)
            if records and quarantine is not None and not settings.dry_run:
                quarantine.add(records)
            for record in records:
                logger.warning(
                    "item quarantined",
                    extra={
                        "item": record.item,
                        "attribute": record.attribute,
                        "error": record.error,
                    },
                )
            checkpoint.items_quarantined += len(records)
            checkpoint.items_scanned += len(page.items)
            checkpoint.items_written = written_before + sink.items_written
            checkpoint.last_evaluated_key = page.last_evaluated_key
            namer.learn(page.last_evaluated_key)
            if not sink.pending:
                save()  # everything up to this page is in the destination
            _log_page(checkpoint, len(page.items), len(records), kms, page.consumed_capacity)
            if on_page is not None:
                on_page(
                    Progress(
                        checkpoint.pages,
                        checkpoint.items_scanned,
                        checkpoint.items_quarantined,
                        kms_before + kms.requests,
                        kms.cache_hits,
                        clock() - started,
                    )
                )
            if budget is not None:
                budget.consume(page.consumed_capacity)
            if (
                state is not None
                and page.last_evaluated_key
                and context.remaining_ms is not None
                and context.remaining_ms() < margin_ms
            ):
                out_of_time = True
                break
    sink.flush()
    checkpoint.items_written = written_before + sink.items_written
    if out_of_time:
        save()
        status = "continue"
    else:
        checkpoint.done = True
        save()
        if total > 1:
            status = "segment-done"
        else:
            sink.finish(
                started_at=datetime.fromisoformat(checkpoint.started_at),
                finished_at=datetime.now(UTC),
            )
            status = "succeeded"
    return _summary(settings, context, checkpoint, sink, quarantine, kms, status, clock() - started)


def _log_page(
    checkpoint: Checkpoint, items: int, quarantined: int, kms: KmsDecrypter, capacity: float
) -> None:
    logger.info(
        "page copied",
        extra={
            "segment": checkpoint.segment,
            "page": checkpoint.pages,
            "items": items,
            "items_quarantined": quarantined,
            "items_scanned": checkpoint.items_scanned,
            "kms_requests": kms.requests,
            "kms_cache_hits": kms.cache_hits,
            "consumed_read_capacity": capacity,
        },
    )


def _summary(
    settings: Settings,
    context: SyncContext,
    checkpoint: Checkpoint,
    sink: Sink,
    quarantine: QuarantineStore | None,
    kms: KmsDecrypter,
    status: str,
    seconds: float,
) -> SyncSummary:
    return SyncSummary(
        status=status,
        run_id=context.run_id,
        trigger=context.invocation.trigger,
        event_id=context.invocation.event_id,
        dry_run=settings.dry_run,
        item_format=settings.item_format,
        source_table=settings.source_table_arn,
        destination=settings.destination.uri,
        location=sink.location,
        quarantine=quarantine.location if quarantine and checkpoint.items_quarantined else None,
        items_scanned=checkpoint.items_scanned,
        items_decrypted=checkpoint.items_decrypted,
        attributes_decrypted=checkpoint.attributes_decrypted,
        items_written=checkpoint.items_written,
        items_quarantined=checkpoint.items_quarantined,
        pages=checkpoint.pages,
        segment=settings.segment,
        total_segments=settings.total_segments,
        kms_requests=checkpoint.kms_requests,
        kms_cache_hits=kms.cache_hits,
        items_swept=getattr(sink, "items_swept", 0),
        assume_role_calls=context.assume_role_calls(),
        seconds=round(seconds, 3),
        started_at=datetime.fromisoformat(checkpoint.started_at),
        finished_at=datetime.now(UTC),
    )


def _item_specific(failure: AttributeDecryptFailed, kms: KmsDecrypter) -> bool:
    """Whether a failure belongs to the item. AccessDenied does only when this key has decrypted
    something else in this run; otherwise the role or key policy is wrong for every item."""
    if failure.kind in ACCESS_DENIED:
        return kms.successes > 0
    return failure.kind in ITEM_FAILURES
