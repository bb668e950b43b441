"""Copy one segment of the source (the whole table when not segmented), or as much of it as the
invocation's time allows: scan a page, decode it, commit it, until the scan ends or time is up.
The stages overlap (pipeline/overlap.py): a page is committed while the next one decodes, and
the page after it is read meanwhile.

With a state store the segment resumes from its checkpoint and saves one after each page that
reached the destination; a segment that runs short of time returns ``continue``, and the next
invocation of the same run and segment resumes there. A run of one segment that reaches the end
of the scan is finalized here; a segmented run is finalized by its own step (see runs.py).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from table_sync.aws.dynamodb import ScanPage, SourceTable, scan_pages
from table_sync.aws.kms import KmsDecrypter
from table_sync.changes import PageChanges, copy_fingerprint, page_changes
from table_sync.errors import ConfigurationError, KeyNotProven
from table_sync.formats import build_decoder
from table_sync.formats.base import Wanted, kms_hint
from table_sync.items import Item, key_of
from table_sync.models import Invocation, Settings, SyncSummary
from table_sync.models.summary import StepStatus
from table_sync.pipeline.budgets import Deadline, ReadBudget, RequestBudget
from table_sync.pipeline.commit import Checkpointer, PageCommitter, ScannedPage
from table_sync.pipeline.decode import ItemNamer, PageDecoder
from table_sync.pipeline.heap import start_up_frozen
from table_sync.pipeline.overlap import CommitBehind, ReadAhead
from table_sync.pipeline.report import Progress, StepFacts, summarize
from table_sync.quarantine import QuarantineStore
from table_sync.shaping import Shaper
from table_sync.sinks import Sink
from table_sync.sinks.dynamodb import BOOKKEEPING_ATTRIBUTES
from table_sync.state import Checkpoint, KeyLedger, MemoryLedger, StateStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@dataclass
class SegmentContext:
    run_id: str
    invocation: Invocation
    assume_role_calls: Callable[[], int] = lambda: 0
    state: StateStore | None = None
    # The invocation's remaining time in milliseconds (the Lambda context's), when it has a limit.
    remaining_ms: Callable[[], int] | None = None


# A page of which at most 1 / QUIET_SHARE changed has little to decrypt and write: after it, the
# next QUIET_READ_AHEAD pages are read as soon as a page arrives, while it is compared with the
# copy: a nightly run's pages are read one after another without a pause, as a Scan page takes
# longer to arrive than a quiet page to compare. Held then: the pages read ahead, the one
# compared, and the last one's few changes.
QUIET_SHARE = 10
QUIET_READ_AHEAD = 2


def copy_segment(
    settings: Settings,
    context: SegmentContext,
    *,
    source: DynamoDBClient,
    kms: KmsDecrypter,
    sink: Sink,
    quarantine: QuarantineStore | None = None,
    shaper: Shaper | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    on_page: Callable[[Progress], None] | None = None,
) -> SyncSummary:
    started = clock()
    checkpoint = load_checkpoint(settings, context)
    sink.prepare()
    sink.resume(checkpoint.sink)
    committer = _committer(
        settings, context, checkpoint, source, kms, sink, quarantine, shaper, clock, sleep
    )
    kms.budget = committer.kms_budget
    namer = ItemNamer(settings.source_key_attributes or sink.key_attributes)
    budget = ReadBudget.for_settings(settings, clock, sleep)
    deadline = Deadline(
        context.remaining_ms, settings.resume_margin_seconds, context.state is not None
    )
    with (
        start_up_frozen(),
        ThreadPoolExecutor(settings.decrypt_concurrency, thread_name_prefix="decrypt") as pool,
        ThreadPoolExecutor(1, thread_name_prefix="scan") as reader,
        ThreadPoolExecutor(1, thread_name_prefix="commit") as writer,
    ):
        behind = CommitBehind(
            writer,
            lambda: on_page(_progress(committer, clock() - started)) if on_page else None,
        )
        try:
            ahead = ReadAhead(
                remaining_pages(source, settings, checkpoint),
                reader,
                lambda p: budget.consume(p.consumed_capacity),
            )
            shaper = committer.shaper
            decoder = _page_decoder(settings, context, kms, namer, pool, shaper, quarantine)
            stages = _Stages(settings, sink, kms, decoder, namer, committer, behind, pool)
            status = stages.copy(ahead, checkpoint.pages, deadline)
        except BaseException:
            behind.abandon()
            raise
    facts = _facts(status, context, sink, kms, committer, quarantine, clock() - started)
    return summarize(
        settings,
        context.invocation,
        checkpoint,
        facts,
        segment=settings.segment,
        total_segments=settings.total_segments,
    )


def _facts(
    status: StepStatus,
    context: SegmentContext,
    sink: Sink,
    kms: KmsDecrypter,
    committer: PageCommitter,
    quarantine: QuarantineStore | None,
    seconds: float,
) -> StepFacts:
    return StepFacts(
        status=status,
        location=sink.location,
        quarantine=quarantine.location if quarantine else None,
        kms_cache_hits=kms.cache_hits,
        items_swept=committer.finalized.items_swept,
        assume_role_calls=context.assume_role_calls(),
        seconds=seconds,
    )


def _committer(
    settings: Settings,
    context: SegmentContext,
    checkpoint: Checkpoint,
    source: DynamoDBClient,
    kms: KmsDecrypter,
    sink: Sink,
    quarantine: QuarantineStore | None,
    shaper: Shaper | None,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> PageCommitter:
    return PageCommitter(
        checkpoint,
        sink,
        quarantine,
        _checkpointer(settings, context),
        kms,
        settings.dry_run,
        _ledger(settings, context),
        SourceTable(source, settings.source_table_name, settings.write_concurrency),
        RequestBudget.for_settings(settings, clock, sleep),
        shaper or Shaper(),  # it counts AccountB's KMS requests for the checkpoint
    )


@dataclass
class _Stages:
    """A segment's pages, each compared with the copy, decoded and handed to the committer."""

    settings: Settings
    sink: Sink
    kms: KmsDecrypter
    decoder: PageDecoder
    namer: ItemNamer
    committer: PageCommitter
    behind: CommitBehind
    pool: ThreadPoolExecutor

    def copy(self, ahead: ReadAhead[ScanPage], number: int, deadline: Deadline) -> StepStatus:
        """Every page ``ahead`` reads, until the scan ends (the segment finished: its status
        from the committer) or the invocation's time is near its end (paused)."""
        settings, sink = self.settings, self.sink
        fingerprint = copy_fingerprint(settings, self.decoder.shaper.transform_version)
        candidates: list[Wanted] = []  # the key's proof (see _prove_key)
        quiet = False  # the last page changed little (a nightly run's pages)
        for page in ahead:
            number += 1
            if quiet:
                ahead.start(QUIET_READ_AHEAD)  # read on while this one is compared
            candidates = candidates or self.decoder.key_candidates(page.items)
            changes = _changes(settings, sink, page.items, fingerprint, self.pool)
            quiet = len(changes.changed) * QUIET_SHARE <= len(page.items)
            decoded = self.decoder.decode(changes.changed, changes.digests, number, changes.copied)
            scanned = ScannedPage.of(page, changes)
            del page, changes  # the source items: not kept while the page is written
            self.behind.submit(functools.partial(self.committer.commit, scanned, decoded))
            self.namer.learn(scanned.last_evaluated_key)
            if scanned.last_evaluated_key and deadline.near():
                self.behind.drain()
                return self.committer.pause()
            ahead.start()  # the next page is read while this one is written
        self.behind.drain()
        _prove_key(settings, self.kms, candidates, self.committer.checkpoint)
        return self.committer.finish()


def _prove_key(
    settings: Settings, kms: KmsDecrypter, candidates: list[Wanted], checkpoint: Checkpoint
) -> None:
    """Before a segment is reported done: if none of its steps decrypted anything (no item
    changed), one Decrypt of the first ciphertexts this step's scan reached, changed or not.
    So a wrong SOURCE_KMS_KEY_ARN, or a permission lost since the last change, fails every run,
    dry runs included, instead of the first run that meets a changed item."""
    if kms.successes or checkpoint.attributes_decrypted or not candidates:
        return
    code = kms.prove(candidates)
    if code is not None:
        key = settings.source_kms_key_arn
        raise KeyNotProven(key, code, kms_hint(code, key))


def _ledger(settings: Settings, context: SegmentContext) -> KeyLedger | MemoryLedger | None:
    """Where a mirror keeps the keys each page saw: the state store, or a dry run's memory."""
    if not settings.mirror:
        return None
    if context.state is not None:
        return KeyLedger(context.state)
    return MemoryLedger() if settings.dry_run else None


def _changes(
    settings: Settings, sink: Sink, items: list[Item], fingerprint: bytes, pool: ThreadPoolExecutor
) -> PageChanges:
    """The page's items sorted by whether their copies were made from them as they are now
    (their keys are the copy's key attributes; with none known, every item is changed). The
    copy's digests are read on ``pool`` while the page's own are computed."""
    key_attributes = sink.key_attributes
    keys = [key_of(item, key_attributes) for item in items] if key_attributes else None
    if keys is None or settings.full_copy:
        return page_changes(items, keys, fingerprint, None)
    reading = pool.submit(sink.digests, keys)
    return page_changes(items, keys, fingerprint, reading.result)


def load_checkpoint(settings: Settings, context: SegmentContext) -> Checkpoint:
    """Where this segment of the run stands: its checkpoint, or a fresh start. A checkpoint
    made with other settings that shape the copy is refused, before anything is written."""
    segment = settings.segment or 0
    shape = run_shape(settings)
    saved = context.state.load(context.run_id, segment) if context.state else None
    if saved is not None:
        check_shape(context.run_id, saved.shape, shape, "resumed")
        return saved
    return Checkpoint(
        run_id=context.run_id,
        segment=segment,
        total_segments=settings.total_segments or 1,
        started_at=datetime.now(UTC).isoformat(),
        shape=shape,
    )


def run_shape(settings: Settings) -> dict[str, str]:
    """The settings a run's copy is made of, by variable: where it goes, how items are read,
    whether it is an incremental export, and over how many segments."""
    types = settings.plaintext_types
    return {
        "DESTINATION": settings.destination.uri,
        "ITEM_FORMAT": settings.item_format,
        "ENCRYPTED_ATTRIBUTES": ",".join(sorted(settings.encrypted_attributes)),
        "PLAINTEXT_TYPES": ",".join(f"{name}:{types[name]}" for name in sorted(types)),
        "KMS_ENCRYPTION_CONTEXT": json.dumps(settings.kms_encryption_context, sort_keys=True),
        "CHANGE_INDEX_TABLE": settings.change_index_table or "(unset)",
        "TOTAL_SEGMENTS": str(settings.total_segments or 1),
        **_shaping_shape(settings),
    }


def _shaping_shape(settings: Settings) -> dict[str, str]:
    """The settings that shape the copy (a checkpoint made before they existed holds none of
    them, and resumes)."""
    masks = settings.mask_attributes
    values = {
        "COPY_ATTRIBUTES": ",".join(sorted(settings.copy_attributes)),
        "DROP_ATTRIBUTES": ",".join(sorted(settings.drop_attributes)),
        "TRANSFORM": settings.transform or "",
        "MASK_ATTRIBUTES": ",".join(f"{name}:{masks[name]}" for name in sorted(masks)),
        "HASH_ATTRIBUTES": ",".join(sorted(settings.hash_attributes)),
        "REENCRYPT_ATTRIBUTES": ",".join(sorted(settings.reencrypt_attributes)),
        "DESTINATION_ATTRIBUTE_KEY_ARN": settings.destination_attribute_key_arn or "",
    }
    return {name: value or "(unset)" for name, value in values.items()}


def check_shape(run_id: str, saved: dict[str, str], now: dict[str, str], how: str) -> None:
    """ConfigurationError naming each setting whose value differs from the run's."""
    problems = [
        f"{name}: run {run_id} was made with {saved[name]!r} and cannot be {how} with "
        f"{value!r} (start a new run, or give the run's own settings)"
        for name, value in now.items()
        if name in saved and saved[name] != value
    ]
    if problems:
        raise ConfigurationError(problems)


def remaining_pages(
    source: DynamoDBClient, settings: Settings, checkpoint: Checkpoint
) -> Iterator[ScanPage]:
    """The segment's pages after its checkpoint (none once the segment is done)."""
    if checkpoint.done:
        return iter(())
    segmented = checkpoint.total_segments > 1
    return scan_pages(
        source,
        settings.source_table_name,
        page_size=settings.page_size,
        exclusive_start_key=checkpoint.last_evaluated_key,
        segment=checkpoint.segment if segmented else None,
        total_segments=checkpoint.total_segments if segmented else None,
        region=settings.table_region_origin,
    )


def _page_decoder(
    settings: Settings,
    context: SegmentContext,
    kms: KmsDecrypter,
    namer: ItemNamer,
    pool: ThreadPoolExecutor,
    shaper: Shaper,
    quarantine: QuarantineStore | None,
) -> PageDecoder:
    shaper.bind_keys(namer.key_attributes)  # the copy's, known once the sink is prepared
    return PageDecoder(
        build_decoder(settings, kms, namer.key_attributes),
        kms,
        namer,
        pool,
        settings.decrypt_concurrency,
        context.run_id,
        settings.segment or 0,
        settings.source_table_arn,
        quarantining=quarantine is not None,
        reserved=tuple(sorted(BOOKKEEPING_ATTRIBUTES)) if settings.destination_table else (),
        shaper=shaper,
    )


def _checkpointer(settings: Settings, context: SegmentContext) -> Checkpointer:
    return Checkpointer(
        context.state, settings.destination.uri, context.run_id, settings.lease_seconds
    )


def _progress(committer: PageCommitter, seconds: float) -> Progress:
    checkpoint = committer.checkpoint
    return Progress(
        checkpoint.pages,
        checkpoint.items_scanned,
        checkpoint.items_quarantined,
        committer.kms_requests,
        committer.kms.cache_hits,
        seconds,
    )
