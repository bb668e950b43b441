"""What a step of a run reports: progress after each page, and its summary."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from table_sync.models import SyncSummary
from table_sync.models.summary import StepStatus

if TYPE_CHECKING:
    from table_sync.models import Invocation, Settings
    from table_sync.state import Checkpoint


@dataclass(frozen=True)
class Progress:
    """Where a run is, after each page (for the CLI's progress bar)."""

    pages: int
    items_scanned: int
    items_quarantined: int
    kms_requests: int
    kms_cache_hits: int
    seconds: float


@dataclass(frozen=True)
class StepFacts:
    """What only the step itself knows, beside its checkpoint's counts."""

    status: StepStatus
    location: str | None
    quarantine: str | None
    kms_cache_hits: int = 0
    items_swept: int = 0
    assume_role_calls: int = 0
    seconds: float = 0.0


def summarize(
    settings: Settings,
    invocation: Invocation,
    checkpoint: Checkpoint,
    facts: StepFacts,
    *,
    segment: int | None = None,
    total_segments: int | None = None,
) -> SyncSummary:
    """One summary for a segment step, a whole single-segment run or a finalized run (whose
    checkpoint is every segment's, combined)."""
    return SyncSummary.model_validate(
        {
            **asdict(facts),
            **{name: getattr(checkpoint, name) for name in checkpoint.COUNTS},
            "run_id": checkpoint.run_id,
            "trigger": invocation.trigger,
            "event_id": invocation.event_id,
            "dry_run": settings.dry_run,
            "item_format": settings.item_format,
            "source_table": settings.source_table_arn,
            "destination": settings.destination.uri,
            "quarantine": facts.quarantine,  # where it is, even when this run put nothing there
            "segment": segment,
            "total_segments": total_segments,
            "seconds": round(facts.seconds, 3),
            "estimated_cost_usd": _cost(settings, checkpoint, facts),
            "started_at": datetime.fromisoformat(checkpoint.started_at),
            "finished_at": datetime.now(UTC),
        }
    )


def _cost(settings: Settings, checkpoint: Checkpoint, facts: StepFacts) -> dict[str, float]:
    """KMS requests (both accounts') and write units at the configured list prices (a dry run's
    are what a real run would pay: it decrypts and re-encrypts what the real run would, and
    counts the writes and deletes)."""
    requests = checkpoint.kms_requests + checkpoint.destination_kms_requests
    kms = requests * settings.kms_price_per_10k_requests / 10_000
    units = checkpoint.write_units + facts.items_swept
    writes = units * settings.write_price_per_million_units / 1_000_000
    return {"kms": kms, "writes": writes, "total": kms + writes}
