"""Which export a run writes: the chain's planning, on an in-memory state store."""

from __future__ import annotations

import json
from typing import Any

import pytest

from table_sync.errors import DestinationError
from table_sync.sinks.change_index import ExportChain


class MemoryStore:
    """StateStore's put and get, in memory (the records ExportChain keeps)."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}

    def put(self, record_id: str, attributes: dict[str, Any], *, expires: bool = True) -> None:
        self.records[record_id] = {"id": {"S": record_id}, **attributes}

    def get(self, record_id: str) -> dict[str, Any] | None:
        return self.records.get(record_id)


def _chain() -> ExportChain:
    return ExportChain(MemoryStore(), "s3://copies/exports")  # type: ignore[arg-type]


def _complete(chain: ExportChain, n: int, *, every: int, force: bool = False) -> str:
    plan = chain.plan(full_every=every, force_full=force)
    chain.check(f"run-{n}", plan)
    chain.record(f"run-{n}", plan, f"2026-11-{n:02d}T03:00:00.000Z", items=n, swept=0)
    return plan.export_type


def test_a_full_snapshot_every_nth_run() -> None:
    chain = _chain()
    types = [_complete(chain, n, every=3) for n in range(1, 8)]
    assert types == ["FULL_EXPORT", "INCREMENTAL_EXPORT", "INCREMENTAL_EXPORT"] * 2 + [
        "FULL_EXPORT"
    ]
    head = chain.head()
    assert head is not None
    assert (head.latest, head.full, head.since_full, head.seq, head.full_seq) == (
        "run-7",
        "run-7",
        0,
        7,
        7,
    )


def test_every_run_is_full_with_one_and_when_forced() -> None:
    chain = _chain()
    assert [_complete(chain, n, every=1) for n in range(1, 4)] == ["FULL_EXPORT"] * 3
    chain = _chain()
    _complete(chain, 1, every=7)
    assert _complete(chain, 2, every=7, force=True) == "FULL_EXPORT"
    plan = chain.plan(full_every=7, force_full=False)
    assert (plan.export_type, plan.previous, plan.full, plan.full_seq) == (
        "INCREMENTAL_EXPORT",
        "run-2",
        "run-2",
        2,
    )
    assert plan.previous_time == "2026-11-02T03:00:00.000Z"


def test_an_export_completes_only_through_its_own_record() -> None:
    store = MemoryStore()
    chain = ExportChain(store, "s3://copies/exports")  # type: ignore[arg-type]
    _complete(chain, 1, every=7)
    assert chain.position("run-1") == 1
    assert chain.position("run-9") is None  # never completed (or another destination's)
    other = ExportChain(store, "s3://copies/elsewhere")  # type: ignore[arg-type]
    assert other.position("run-1") is None


def test_a_run_planned_before_another_export_completed_cannot_finish() -> None:
    chain = _chain()
    _complete(chain, 1, every=7)
    stale = chain.plan(full_every=7, force_full=False)
    _complete(chain, 2, every=7)
    with pytest.raises(DestinationError, match="export run-2 has completed since"):
        chain.check("run-late", stale)


def test_a_chain_from_before_dynamodbs_layout_continues_with_a_full_snapshot() -> None:
    """A chain recorded before EXPORT_LAYOUT was kept (its exports have .checksum files, data
    named by segment, incremental data beside its manifests): the next export is a full
    snapshot, so every export from the newest full snapshot on is in DynamoDB's layout."""
    store = MemoryStore()
    old_head = {"latest": "run-2", "latest_time": "2026-11-02T03:00:00.000Z", "full": "run-1"}
    store.put(
        "exports#s3://copies/exports",
        {"chain": {"S": json.dumps({**old_head, "seq": 2, "full_seq": 1})}},
    )
    chain = ExportChain(store, "s3://copies/exports")  # type: ignore[arg-type]
    plan = chain.plan(full_every=7, force_full=False)
    assert (plan.export_type, plan.previous, plan.seq, plan.full_seq) == (
        "FULL_EXPORT",
        "run-2",
        3,
        3,
    )
    chain.check("run-3", plan)
    chain.record("run-3", plan, "2026-11-03T03:00:00.000Z", items=3, swept=0)
    assert _complete(chain, 4, every=7) == "INCREMENTAL_EXPORT"
