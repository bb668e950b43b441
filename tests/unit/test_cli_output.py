"""What `table-sync run` and `verify` print, as pure functions of the summary: no Python
reprs on a terminal, one parseable line in a pipe, a progress line with a total when known."""

from __future__ import annotations

import io
import shlex
from datetime import UTC, datetime

from rich.console import Console

from table_sync.models import SyncSummary
from table_sync.pipeline.report import Progress
from table_sync_dev.cli_output import (
    money,
    progress,
    shown,
    summary_line,
    summary_table,
    verify_line,
)

NOW = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)


def _summary(**changes: object) -> SyncSummary:
    values: dict[str, object] = {
        "run_id": "01796400000000-1a2b3c4d",
        "trigger": "scheduler",
        "event_id": None,
        "dry_run": False,
        "item_format": "attributes",
        "source_table": "arn:aws:dynamodb:eu-west-1:111111111111:table/my-table",
        "destination": "dynamodb://my-table-copy",
        "location": "arn:aws:dynamodb:eu-west-1:222222222222:table/my-table-copy",
        "quarantine": "dynamodb://table-sync-quarantine",
        "items_scanned": 12_345,
        "items_decrypted": 12_345,
        "attributes_decrypted": 24_690,
        "items_written": 12_345,
        "items_quarantined": 0,
        "pages": 3,
        "kms_requests": 250,
        "kms_cache_hits": 0,
        "estimated_cost_usd": {"kms": 0.00075, "writes": 0.000075, "total": 0.000825},
        "assume_role_calls": 1,
        "seconds": 1.25,
        "started_at": NOW,
        "finished_at": NOW,
    }
    return SyncSummary.model_validate({**values, **changes})


def test_money_reads_as_money() -> None:
    assert money(0) == "$0"
    assert money(0.00075) == "$0.00075"
    assert money(0.000075) == "$0.000075"  # never 7.5e-05
    assert money(0.125) == "$0.12"
    assert money(1987.5) == "$1,987.50"


def test_values_read_without_python_reprs() -> None:
    assert shown("dry_run", False) == "no"
    assert shown("dry_run", True) == "yes"
    assert shown("items_written", 12345) == "12,345"
    assert shown("seconds", 1.25) == "1.2 s"
    assert shown("segment", None) == "-"
    cost = shown("estimated_cost_usd", {"kms": 0.00075, "writes": 0.000075, "total": 0.000825})
    assert cost == "$0.00082 (kms $0.00075, writes $0.000075)"


def test_the_table_has_no_reprs() -> None:
    console = Console(file=io.StringIO(), width=160, record=True)
    console.print(summary_table(_summary()))
    text = console.export_text()
    for repr_ in ("False", "True", "None", "{'", "e-0"):
        assert repr_ not in text, repr_
    assert "12,345" in text
    assert "dynamodb://table-sync-quarantine (0 items this run)" in text
    none = Console(file=io.StringIO(), width=160, record=True)
    none.print(summary_table(_summary(quarantine=None)))
    assert "none: ON_DECRYPT_ERROR=fail" in none.export_text()


def test_a_pipe_gets_one_line_of_pairs_a_shell_can_split() -> None:
    line = summary_line(_summary(location="s3://copy/with space/"))
    pairs = dict(pair.split("=", 1) for pair in shlex.split(line))
    assert list(pairs)[:3] == ["status", "run_id", "items_scanned"]
    assert pairs["location"] == "s3://copy/with space/"
    assert pairs["cost_usd"] == "0.000825"
    assert summary_line(_summary(quarantine=None)).endswith(" quarantine=none")
    result = {
        "matches": False,
        "source_items": 3,
        "destination_items": 2,
        "missing": ["a"],
        "unexpected": [],
        "different": [],
        "undecryptable": [],
        "duplicated": [],
        "destination": "dynamodb://copy",
        "repair": "table-sync run --full --destination dynamodb://copy",
    }
    verified = dict(pair.split("=", 1) for pair in shlex.split(verify_line(result)))
    assert (verified["result"], verified["missing"]) == ("differ", "1")
    assert verified["repair"] == result["repair"]


def _drive(expected: int | None) -> str:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=80)
    with progress(console, enabled=True, expected=expected) as update:
        for n in (1, 2):
            update(Progress(n, 20 * n, 0, 10, 0, 0.5 * n))
    return out.getvalue()


def test_the_progress_line_has_a_total_and_an_eta_once_known() -> None:
    with progress(Console(file=io.StringIO()), enabled=False, expected=None) as nothing:
        assert nothing is None
    assert "40/40 items" in _drive(40)
    assert "ETA" in _drive(40)
    counter = _drive(None)
    assert "40 items" in counter
    assert "ETA" not in counter
