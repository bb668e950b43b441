"""Commit a decoded page: write it, record its quarantine, count it, and checkpoint the segment
(renewing the destination's lease) whenever everything so far has reached the destination."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from table_sync.aws.dynamodb import ScanPage, SourceTable
from table_sync.aws.kms import KmsDecrypter
from table_sync.changes import PageChanges
from table_sync.errors import DestinationError
from table_sync.items import Item
from table_sync.models.summary import StepStatus
from table_sync.observability import logger
from table_sync.pipeline.budgets import RequestBudget
from table_sync.pipeline.decode import DecodedPage
from table_sync.quarantine import QuarantineRecord, QuarantineStore
from table_sync.shaping import Shaper
from table_sync.sinks import Finalized, Sink
from table_sync.source_keys import SourceKeys
from table_sync.state import Checkpoint, KeyLedger, MemoryLedger, StateStore


@dataclass(frozen=True)
class ScannedPage:
    """What committing a decoded page needs of its scan: not its items, so a page's source
    items are freed once it is decoded, while it is being written."""

    items: int
    last_evaluated_key: Item | None
    consumed_capacity: float
    unchanged: int
    key_hashes: list[int]

    @classmethod
    def of(cls, page: ScanPage, changes: PageChanges) -> ScannedPage:
        return cls(
            len(page.items),
            page.last_evaluated_key,
            page.consumed_capacity,
            changes.unchanged,
            changes.key_hashes,
        )


@dataclass
class Checkpointer:
    """Saves a segment's checkpoint; each save first renews the destination's lease, and a run
    whose lease lapsed and was taken over stops rather than race the new holder."""

    state: StateStore | None
    destination: str
    run_id: str
    lease_seconds: int

    def save(self, checkpoint: Checkpoint) -> None:
        if self.state is None:
            return
        lease = self.state.acquire_lease(self.destination, self.run_id, self.lease_seconds)
        if not lease.held:
            raise DestinationError(
                f"run {self.run_id} lost the lease on {self.destination} to run "
                f"{lease.holder}; stopping without writing more"
            )
        self.state.save(checkpoint)


@dataclass
class PageCommitter:
    checkpoint: Checkpoint
    sink: Sink
    quarantine: QuarantineStore | None
    checkpointer: Checkpointer
    kms: KmsDecrypter
    dry_run: bool
    # A mirror's: the keys each page saw, and the source, for the sweep in the finalize.
    ledger: KeyLedger | MemoryLedger | None = None
    source: SourceTable | None = None
    kms_budget: RequestBudget | None = None
    shaper: Shaper = field(default_factory=Shaper)

    def __post_init__(self) -> None:
        # KMS requests of earlier invocations of this segment (the decrypter counts this one's).
        self._kms_before = self.checkpoint.kms_requests
        self._throttles_before = self.checkpoint.kms_throttles
        self._wait_ms_before = self.checkpoint.kms_wait_ms
        self._destination_kms_before = self.checkpoint.destination_kms_requests
        self.finalized = Finalized()

    @property
    def kms_requests(self) -> int:
        return self._kms_before + self.kms.requests

    def commit(self, page: ScannedPage, decoded: DecodedPage) -> None:
        units = self.sink.write(decoded.copies, decoded.digests)
        if decoded.removals:  # copies of items TRANSFORM now leaves out
            units += self.sink.remove(decoded.removals)
        self._record(decoded.records)
        checkpoint = self.checkpoint
        if self.ledger is not None:  # before the checkpoint that covers the page
            self.ledger.record(
                checkpoint.run_id, checkpoint.segment, checkpoint.pages + 1, page.key_hashes
            )
        checkpoint.pages += 1
        checkpoint.items_unchanged += page.unchanged
        checkpoint.items_changed += len(decoded.copies)
        checkpoint.write_units += units
        checkpoint.items_scanned += page.items
        checkpoint.items_written += 0 if self.dry_run else len(decoded.copies)
        checkpoint.items_quarantined += len(decoded.records)
        checkpoint.items_decrypted += decoded.items_decrypted
        checkpoint.attributes_decrypted += decoded.attributes_decrypted
        checkpoint.items_filtered += decoded.items_filtered
        checkpoint.last_evaluated_key = page.last_evaluated_key
        if self.sink.committed:
            self.save()  # everything up to this page is in the destination
        self._log(page, decoded)

    def save(self) -> None:
        self.checkpoint.sink = self.sink.state()
        self.checkpoint.kms_requests = self.kms_requests
        self.checkpoint.kms_throttles = self._throttles_before + self.kms.throttles
        self.checkpoint.destination_kms_requests = (
            self._destination_kms_before + self.shaper.counter.calls
        )
        if self.kms_budget is not None:
            self.checkpoint.kms_wait_ms = self._wait_ms_before + round(
                self.kms_budget.waited * 1000
            )
        self.checkpointer.save(self.checkpoint)

    def pause(self) -> StepStatus:
        """The invocation's time is nearly up: save the place to resume from."""
        self.sink.flush()
        self.save()
        return "continue"

    def finish(self) -> StepStatus:
        """The segment's scan is complete; a run of one segment is then finalized here.

        A run of one segment hands the finalize its last data file unwritten, so that an S3
        incremental export's delete lines share it with the last puts, as in DynamoDB's own;
        its checkpoint is done only once the finalize is, so a finalize that fails resumes
        from the last page written and writes that file again."""
        if self.checkpoint.total_segments > 1:
            self.sink.flush()
            self.checkpoint.done = True
            self.save()
            return "segment-done"
        self.finalized = self.sink.finalize(
            [self.sink.state()],
            started_at=datetime.fromisoformat(self.checkpoint.started_at),
            finished_at=datetime.now(UTC),
            source=(
                SourceKeys.for_run(self.source, self.ledger, [self.checkpoint])
                if self.ledger is not None and self.source is not None
                else None  # not a mirror
            ),
        )
        self.checkpoint.done = True
        self.save()
        return "succeeded"

    def _record(self, records: list[QuarantineRecord]) -> None:
        if records and self.quarantine is not None and not self.dry_run:
            self.quarantine.add(records)
        for record in records:
            logger.warning(
                "item quarantined",
                extra={"item": record.item, "attribute": record.attribute, "error": record.error},
            )

    def _log(self, page: ScannedPage, decoded: DecodedPage) -> None:
        logger.info(
            "page copied",
            extra={
                "segment": self.checkpoint.segment,
                "page": self.checkpoint.pages,
                "items": page.items,
                "items_quarantined": len(decoded.records),
                "items_scanned": self.checkpoint.items_scanned,
                "kms_requests": self.kms.requests,
                "kms_cache_hits": self.kms.cache_hits,
                "consumed_read_capacity": page.consumed_capacity,
            },
        )
