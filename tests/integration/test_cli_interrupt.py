"""Ctrl-C during `table-sync run` (issue 14, item 2): the run stops at its last checkpoint,
gives the destination's lease back, and prints the command that resumes it; that command
finishes the copy exactly."""

from __future__ import annotations

import json
import os
import pty
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from table_sync_dev.local.seed import EmbeddedAws, write_bulk_items
from table_sync_dev.local.verify import differences, read_table

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _pages_done(aws: EmbeddedAws) -> int:
    """Pages the run's checkpoint covers (0 before its first)."""
    ddb = aws.account_b().client("dynamodb")
    items = ddb.scan(TableName=aws.state_table, ConsistentRead=True)["Items"]
    states = [json.loads(i["state"]["S"]) for i in items if "state" in i]
    return max((s["pages"] for s in states), default=0)


@pytest.mark.items(0)
def test_ctrl_c_stops_at_a_checkpoint_and_the_printed_command_resumes_it(
    aws: EmbeddedAws, function_env: dict[str, str]
) -> None:
    write_bulk_items(aws, 3_000)
    env = {
        **os.environ,
        "STATE_TABLE": aws.state_table,
        "PAGE_SIZE": "150",
        "TERM": "xterm-256color",
        "COLUMNS": "400",
    }
    main, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "table_sync_dev.cli", "run"],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=env,
    )
    os.close(terminal)
    output: list[bytes] = []

    def read() -> None:
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the terminal closed: the process has exited
                return
            if not chunk:
                return
            output.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while _pages_done(aws) < 2:
            assert process.poll() is None, b"".join(output).decode(errors="replace")
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)  # what Ctrl-C sends the foreground process
        assert process.wait(timeout=60) == 130
    finally:
        if process.poll() is None:
            process.kill()
        reader.join(timeout=5)
        os.close(main)
    text = ANSI.sub("", b"".join(output).decode(errors="replace"))
    assert "Traceback" not in text
    # The progress line is erased once Ctrl-C stops the run (before, its last frame stayed,
    # above the "interrupted" line): nothing but the erase comes between them.
    raw = b"".join(output).decode(errors="replace")
    between = raw[raw.rindex("syncing") : raw.index("interrupted:")]
    assert "\x1b[2K" in between, repr(between)
    match = re.search(r"resume with: (table-sync [^\r\n]*)", text)
    assert match, text
    pages_before = _pages_done(aws)
    assert 2 <= pages_before < 20  # stopped mid-run, at a checkpoint
    lease = (
        aws.account_b()
        .client("dynamodb")
        .get_item(
            TableName=aws.state_table,
            Key={"id": {"S": f"lease#dynamodb://{aws.destination_table}"}},
            ConsistentRead=True,
        )
    )
    assert "Item" not in lease  # given back at once, not held for LEASE_SECONDS

    command = shlex.split(match.group(1))
    assert command[:2] == ["table-sync", "run"]
    resumed = subprocess.run(
        [sys.executable, "-m", "table_sync_dev.cli", *command[1:], "--json"],
        env={**env, "COLUMNS": "100"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    summary: dict[str, Any] = json.loads(resumed.stdout)
    assert summary["run_id"] == command[command.index("--run-id") + 1]
    assert summary["status"] == "succeeded"
    assert summary["items_scanned"] == 3_000  # every item once, across both processes
    copy = read_table(aws.account_b().client("dynamodb"), aws.destination_table)
    assert differences(aws.expected, copy) == []
