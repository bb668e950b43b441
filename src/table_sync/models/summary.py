"""What a run did: returned by the handler, printed by the CLI and emitted as metrics."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

# succeeded: the copy is complete. continue: the time budget ran short; invoke again with the
# same run (and segment). segment-done: this segment is finished; finalize when all are.
StepStatus = Literal["succeeded", "continue", "segment-done"]


class SyncSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: StepStatus = "succeeded"
    run_id: str
    trigger: str
    event_id: str | None
    dry_run: bool
    item_format: str
    source_table: str
    destination: str
    location: str | None
    quarantine: str | None
    items_scanned: int
    items_decrypted: int
    attributes_decrypted: int
    items_written: int
    items_quarantined: int
    # Items whose copy was made from the same item and settings: neither decrypted nor written.
    items_unchanged: int = 0
    pages: int
    segment: int | None = None
    total_segments: int | None = None
    kms_requests: int
    kms_cache_hits: int
    # Throttled Decrypt attempts (retried), and the time spent waiting on KMS_REQUESTS_PER_SECOND.
    kms_throttles: int = 0
    kms_wait_ms: int = 0
    items_swept: int = 0
    # Items TRANSFORM left out of the copy (a copy of one the destination held is removed).
    items_filtered: int = 0
    # Requests to AccountB's KMS: HASH_KEY_ARN's GenerateMac, REENCRYPT's GenerateDataKey.
    destination_kms_requests: int = 0
    # Copies written (or, in a dry run, that a real run would write) and their write units.
    items_changed: int = 0
    write_units: int = 0
    # What the run's KMS requests and writes (puts and deletes) cost at the configured prices.
    estimated_cost_usd: dict[str, float] = {}
    assume_role_calls: int
    seconds: float
    started_at: datetime
    finished_at: datetime

    @property
    def done(self) -> bool:
        return self.status != "continue"

    def metrics(self) -> dict[str, tuple[float, str]]:
        """The numbers worth graphing, as ``name -> (value, CloudWatch unit)``."""
        return {
            "ItemsScanned": (self.items_scanned, "Count"),
            "ItemsDecrypted": (self.items_decrypted, "Count"),
            "AttributesDecrypted": (self.attributes_decrypted, "Count"),
            "ItemsWritten": (self.items_written, "Count"),
            "ItemsQuarantined": (self.items_quarantined, "Count"),
            "ItemsUnchanged": (self.items_unchanged, "Count"),
            "ItemsSwept": (self.items_swept, "Count"),
            "ItemsFiltered": (self.items_filtered, "Count"),
            "DestinationKmsRequests": (self.destination_kms_requests, "Count"),
            "Pages": (self.pages, "Count"),
            "KmsRequests": (self.kms_requests, "Count"),
            "KmsCacheHits": (self.kms_cache_hits, "Count"),
            "KmsThrottles": (self.kms_throttles, "Count"),
            "KmsBudgetWaitSeconds": (self.kms_wait_ms / 1000, "Seconds"),
            "AssumeRoleCalls": (self.assume_role_calls, "Count"),
            "DurationSeconds": (self.seconds, "Seconds"),
            "ItemsPerSecond": (
                self.items_scanned / self.seconds if self.seconds > 0 else 0.0,
                "Count/Second",
            ),
        }


class SkippedRun(BaseModel):
    """Another run holds the destination's lease: this start did nothing, by design."""

    model_config = ConfigDict(frozen=True)

    status: Literal["skipped"] = "skipped"
    run_id: str
    destination: str
    reason: str
    held_by: str
    lease_expires_at: datetime
