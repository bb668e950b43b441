"""A run's lifecycle: which run an invocation belongs to, the event's overrides, the lease on
the destination, one step of the run (a segment, until done or out of time), and the finalize
that completes a segmented run. Shared by the Lambda (function.py) and the CLI.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3

from table_sync.aws.clients import connect_source
from table_sync.aws.dynamodb import SourceTable
from table_sync.errors import ConfigurationError, DestinationError
from table_sync.models import Invocation, S3Destination, Settings, SkippedRun, SyncSummary
from table_sync.observability import CallCounter, logger
from table_sync.pipeline.report import Progress, StepFacts, summarize
from table_sync.pipeline.segment import SegmentContext, check_shape, copy_segment, run_shape
from table_sync.quarantine import build_quarantine
from table_sync.shaping.build import build_shaper
from table_sync.sinks import build_sink
from table_sync.source_keys import SourceKeys
from table_sync.state import Checkpoint, KeyLedger, StateStore


def new_run_id() -> str:
    """Sortable like DynamoDB's export ids: milliseconds since the epoch, then 8 random hex."""
    return f"{int(time.time() * 1000):014d}-{uuid.uuid4().hex[:8]}"


def run_id_for(invocation: Invocation) -> str:
    """The run an invocation belongs to. A scheduled event keeps its id and time when EventBridge
    retries it, so a retry of a failed or timed-out run resumes that run instead of restarting."""
    if invocation.run_id:
        return invocation.run_id
    if invocation.event_id and invocation.time:
        digest = hashlib.sha256(invocation.event_id.encode()).hexdigest()[:8]
        return f"{int(invocation.time.timestamp() * 1000):014d}-{digest}"
    return new_run_id()


def apply_invocation(settings: Settings, invocation: Invocation) -> Settings:
    """Settings with the event's overrides (backfill: dry run, page size, destination;
    segment: which segment), validated like the environment's."""
    update: dict[str, Any] = {}
    if invocation.dry_run:
        update["dry_run"] = True
    if invocation.full:
        update["full_copy"] = True
    if invocation.page_size is not None:
        update["page_size"] = invocation.page_size
    if invocation.destination is not None:
        update["destination"] = invocation.destination
        if isinstance(invocation.destination, S3Destination):
            # SWEEP_DELETES is the dynamodb:// copy's (template.yaml sets it for one): a
            # backfill into S3 from that function writes a full snapshot and sweeps nothing.
            update["sweep_deletes"] = None
    if invocation.total_segments is not None:
        update["total_segments"] = invocation.total_segments
        update["segment"] = invocation.segment if invocation.segment is not None else 0
    return settings.model_copy(update=update) if update else settings


def run_step(
    settings: Settings,
    invocation: Invocation,
    *,
    base_session: boto3.Session,
    role_session_name: str,
    run_id: str | None = None,
    on_page: Callable[[Progress], None] | None = None,
    remaining_ms: Callable[[], int] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> SyncSummary | SkippedRun:
    """One step of a run, with ``base_session``'s credentials (AccountB): a whole run, one
    segment until done or out of time, or the finalize of a segmented run. Skipped when another
    run holds the destination's lease."""
    run_id = run_id or run_id_for(invocation)
    logger.append_keys(run_id=run_id, segment=settings.segment)
    state = StateStore.for_settings(settings, base_session)
    skipped = _take_lease(settings, state, run_id)
    if skipped is not None:
        return skipped
    settings = full_copy_due(settings, state)
    if invocation.trigger == "finalize":
        return finalize_run(
            settings,
            invocation,
            run_id,
            base_session=base_session,
            state=state,
            role_session_name=role_session_name,
        )
    counter = CallCounter()
    try:
        source = connect_source(settings, base_session, role_session_name, counter)
        summary = copy_segment(
            settings,
            SegmentContext(run_id, invocation, lambda: counter.calls, state, remaining_ms),
            source=source.dynamodb,
            kms=source.kms,
            sink=build_sink(settings, base_session, run_id),
            quarantine=build_quarantine(settings, base_session, run_id),
            shaper=build_shaper(settings, base_session, settings.source_key_attributes),
            on_page=on_page,
            clock=clock,
            sleep=sleep,
        )
    except BaseException:
        # A failed (or interrupted) run gives the destination back at once rather than block
        # it for LEASE_SECONDS; resuming it (same run id) takes the lease again. The run's own
        # error is the one to report, not a second one from here.
        if state is not None:
            with contextlib.suppress(DestinationError):
                state.release_lease(settings.destination.uri, run_id)
        raise
    if state is not None and summary.status == "succeeded":
        _count_complete_run(settings, state, summary.items_scanned)
        state.release_lease(settings.destination.uri, run_id)
    return summary


def full_copy_due(settings: Settings, state: StateStore | None) -> Settings:
    """``settings`` as a FULL_COPY when FULL_COPY_EVERY says this run of a dynamodb:// copy is
    due one. Every step of the run decides alike: the count changes only when a run completes,
    and the destination's lease keeps other runs out meanwhile."""
    every = settings.full_copy_every
    if not every or settings.full_copy or state is None or settings.destination_table is None:
        return settings
    since = state.runs_since_full_copy(settings.destination.uri)
    if since is not None and since + 1 < every:
        return settings
    return settings.model_copy(update={"full_copy": True})


def _count_complete_run(settings: Settings, state: StateStore | None, scanned: int) -> None:
    """A run completed: count it toward FULL_COPY_EVERY, and keep how many items it scanned
    (the next run's expected total)."""
    if state is None:
        return
    if settings.full_copy_every and settings.destination_table:
        state.record_complete_run(settings.destination.uri, full=settings.full_copy)
    state.record_source_items(settings.source_table_arn, scanned)


def _take_lease(settings: Settings, state: StateStore | None, run_id: str) -> SkippedRun | None:
    """Take (or renew) the destination's lease; a SkippedRun when another run holds it."""
    if state is None:
        return None
    lease = state.acquire_lease(settings.destination.uri, run_id, settings.lease_seconds)
    if lease.held:
        return None
    skipped = SkippedRun(
        run_id=run_id,
        destination=settings.destination.uri,
        reason="another run is writing this destination",
        held_by=lease.holder,
        lease_expires_at=datetime.fromtimestamp(lease.expires_at, UTC),
    )
    logger.warning("run skipped", extra=skipped.model_dump(mode="json"))
    return skipped


def _source_table(
    settings: Settings, base_session: boto3.Session, role_session_name: str
) -> SourceTable:
    """The source, for the sweep to confirm its deletions (as the reader role)."""
    source = connect_source(settings, base_session, role_session_name)
    return SourceTable(source.dynamodb, settings.source_table_name, settings.write_concurrency)


def finalize_run(
    settings: Settings,
    invocation: Invocation,
    run_id: str,
    *,
    base_session: boto3.Session,
    state: StateStore | None,
    role_session_name: str,
) -> SyncSummary:
    """After every segment of a parallel run is done: the sink finishes the copy from all the
    segments' checkpoints (S3 manifests, DynamoDB sweep), the lease is released, and the
    summary reports the whole run."""
    if state is None:
        raise ConfigurationError(["STATE_TABLE: required to finalize a parallel run"])
    total = invocation.total_segments or 1
    checkpoints = state.segments(run_id, total)
    shape = run_shape(settings)
    for checkpoint in filter(None, checkpoints):
        check_shape(run_id, checkpoint.shape, shape, "finalized")
        if checkpoint.total_segments != total:
            raise ConfigurationError(
                [
                    f"TOTAL_SEGMENTS: run {run_id} has {checkpoint.total_segments} segments; "
                    f"a finalize with {total} would leave segments out of the copy"
                ]
            )
    unfinished = [n for n, c in enumerate(checkpoints) if c is None or not c.done]
    if unfinished:
        raise DestinationError(
            f"run {run_id} cannot be finalized: segment(s) {unfinished} are not done"
        )
    done = [c for c in checkpoints if c is not None]
    run = Checkpoint.combined(done)
    sink = build_sink(settings, base_session, run_id)
    sink.prepare()
    started_at = datetime.fromisoformat(run.started_at)
    finished_at = datetime.now(UTC)
    finalized = sink.finalize(
        [c.sink for c in done],
        started_at=started_at,
        finished_at=finished_at,
        source=(
            SourceKeys.for_run(
                _source_table(settings, base_session, role_session_name), KeyLedger(state), done
            )
            if settings.mirror
            else None
        ),
    )
    _count_complete_run(settings, state, run.items_scanned)  # before the lease goes
    state.release_lease(settings.destination.uri, run_id)
    quarantine = build_quarantine(settings, base_session, run_id)
    facts = StepFacts(
        status="succeeded",
        location=sink.location,
        quarantine=quarantine.location if quarantine else None,
        items_swept=finalized.items_swept,
        seconds=(finished_at - started_at).total_seconds(),
    )
    return summarize(settings, invocation, run, facts, total_segments=total)
