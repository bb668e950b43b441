"""What `table-sync run` and `verify` print: a table on a terminal, one ``key=value`` line in a
pipe (cron, CI, a script), and a live progress line on a terminal's stderr."""

from __future__ import annotations

import contextlib
import math
import shlex
from collections.abc import Iterator, Mapping
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from table_sync.models import SkippedRun, SyncSummary
from table_sync.pipeline.report import Progress as PageProgress

# The summary's fields a pipe gets, in this order (--json has them all).
LINE_FIELDS = (
    "status",
    "run_id",
    "items_scanned",
    "items_written",
    "items_unchanged",
    "items_quarantined",
    "items_swept",
    "kms_requests",
    "seconds",
    "estimated_cost_usd",
    "location",
    "quarantine",
)


def money(amount: float) -> str:
    """US dollars, to two significant digits below a cent: $0.00075, $0.12, $1,990.00."""
    if amount == 0:
        return "$0"
    if amount >= 0.01:
        return f"${amount:,.2f}"
    decimals = 1 - math.floor(math.log10(amount))
    return f"${amount:.{decimals}f}"


def shown(name: str, value: Any) -> str:
    """A summary value as a person reads it: no Python reprs."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f} s" if name == "seconds" else f"{value:,.2f}"
    if name == "estimated_cost_usd" and isinstance(value, Mapping):
        parts = ", ".join(f"{k} {money(v)}" for k, v in value.items() if k != "total")
        return f"{money(value.get('total', 0.0))} ({parts})" if parts else money(0.0)
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {shown(k, v)}" for k, v in value.items())
    return str(value)


def summary_table(summary: SyncSummary | SkippedRun) -> Table:
    table = Table(title="table-sync run", show_header=False)
    values = summary.model_dump(mode="json")
    for name, value in values.items():
        text = shown(name, value)
        if name == "quarantine":  # where it is and what it holds, or why there is none
            text = (
                f"{value} ({values.get('items_quarantined', 0):,} items this run)"
                if value
                else "none: ON_DECRYPT_ERROR=fail stops the run at an undecryptable item"
            )
        table.add_row(name.replace("_", " "), text)
    return table


def summary_line(summary: SyncSummary | SkippedRun) -> str:
    """One line of ``key=value`` pairs (values quoted as a shell would need them)."""
    values = summary.model_dump(mode="json")
    line: dict[str, Any] = {}
    for name in LINE_FIELDS if isinstance(summary, SyncSummary) else tuple(values):
        value = values.get(name)
        if name == "estimated_cost_usd":
            name, value = "cost_usd", (value or {}).get("total", 0.0)
        if value is None and name != "quarantine":
            continue
        line[name] = "none" if value is None else value
    return _pairs(line)


def _pairs(values: Mapping[str, Any]) -> str:
    """``key=value`` pairs on one line, each value quoted as a shell would need it."""
    return " ".join(f"{name}={shlex.quote(str(value))}" for name, value in values.items())


def verify_line(result: Mapping[str, Any]) -> str:
    counts = ("missing", "unexpected", "different", "undecryptable", "duplicated")
    line = {
        "result": "match" if result["matches"] else "differ",
        "source_items": result["source_items"],
        "destination_items": result["destination_items"],
        **{name: len(result[name]) for name in counts},
        "destination": result["destination"],
    }
    if "repair" in result:
        line["repair"] = result["repair"]
    return _pairs(line)


@contextlib.contextmanager
def progress(console: Console, *, enabled: bool, expected: int | None) -> Iterator[Any]:
    """A live progress line on a terminal (nothing otherwise): with the previous complete run's
    item count, a bar, a total and an ETA; without it, a counter. Transient: it is gone once the
    run ends or is interrupted, and the summary follows."""
    if not enabled:
        yield None
        return
    columns: list[Any] = [TextColumn("[bold]syncing")]
    if expected:
        columns += [
            BarColumn(bar_width=20),
            TextColumn("{task.completed:,}/{task.total:,} items"),
            TextColumn("{task.fields[rate]:,.0f}/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
        ]
    else:
        columns += [
            TextColumn("{task.completed:,} items"),
            TextColumn("{task.fields[rate]:,.0f} items/s"),
            TimeElapsedColumn(),
        ]
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("syncing", total=expected, rate=0.0)

        def update(p: PageProgress) -> None:
            bar.update(
                task,
                completed=p.items_scanned,
                total=max(expected, p.items_scanned) if expected else None,
                rate=p.items_scanned / p.seconds if p.seconds else 0.0,
                refresh=True,
            )

        yield update
