"""What `table-sync run` shows a person at a terminal, and what a pipe gets: a real process
under a pseudo-terminal (the progress display needs a real TTY), and one in a pipe."""

from __future__ import annotations

import os
import pty
import re
import select
import socket
import subprocess
import sys

import pytest

from table_sync_dev.local.seed import EmbeddedAws

CLI = [sys.executable, "-m", "table_sync_dev.cli"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def on_a_terminal(env: dict[str, str], *args: str, columns: int = 80) -> tuple[int, str]:
    """Run the CLI with stdin, stdout and stderr on a pseudo-terminal ``columns`` wide; its
    exit status and everything the terminal received, escape codes removed."""
    controller, terminal = pty.openpty()
    full_env = {**os.environ, **env, "TERM": "xterm", "COLUMNS": str(columns), "LINES": "50"}
    proc = subprocess.Popen(
        [*CLI, *args], env=full_env, stdin=terminal, stdout=terminal, stderr=terminal
    )
    os.close(terminal)
    screen = b""
    while select.select([controller], [], [], 60)[0]:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed: the process is gone
            break
        if not chunk:
            break
        screen += chunk
    status = proc.wait(timeout=60)
    os.close(controller)
    return status, ANSI.sub("", screen.decode("utf-8", "replace"))


def test_the_progress_line_and_the_summary_table_read_as_finished(aws: EmbeddedAws) -> None:
    """Before: a full-width bar with no total, a spinner after "done", the elapsed time cut at
    80 columns, and the summary table in Python reprs (`False`, `{'kms': 7.5e-05, ...}`)."""
    env = {**aws.lambda_env(PAGE_SIZE="10"), "STATE_TABLE": aws.state_table}
    status, first = on_a_terminal(env, "run")
    assert status == 0, first
    # No run has completed yet: a counter, no total.
    frames = [f.rstrip() for f in re.split(r"[\r\n]", first) if f.startswith("syncing")]
    assert any(re.fullmatch(r"syncing \d+ items \d+ items/s \d:\d\d:\d\d", f) for f in frames)
    assert "ETA" not in first
    table = first[first.index("table-sync run") :]
    for repr_ in ("False", "True", "None", "{'", "e-0"):
        assert repr_ not in table, repr_
    assert re.search(r"│ dry run\s+│ no\s", table)
    assert re.search(r"│ items written\s+│ 40\s", table)
    assert re.search(r"│ estimated cost usd\s+│ \$0\.000\d+ \(kms \$", table)
    assert re.search(r"│ seconds\s+│ \d+\.\d s", table)

    # The state table now knows the source's size: a total and an ETA, within 80 columns.
    status, second = on_a_terminal(env, "run")
    assert status == 0, second
    frames = [f.rstrip() for f in re.split(r"[\r\n]", second) if f.startswith("syncing")]
    assert any(
        re.fullmatch(r"syncing ━+ 40/40 items \d+/s \d:\d\d:\d\d ETA \S+", f) for f in frames
    )
    assert all(len(frame) <= 80 for frame in frames), frames


def test_a_pipe_gets_one_line_and_no_log_lines(aws: EmbeddedAws) -> None:
    done = subprocess.run(
        [*CLI, "run"],
        env={**os.environ, **aws.lambda_env()},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no progress line and no JSON log line
    (line,) = done.stdout.splitlines()
    assert line.startswith("status=succeeded run_id=")
    assert " items_scanned=40 items_written=40 " in line
    assert " location=arn:aws:dynamodb:" in line


def test_local_aws_on_a_port_in_use_says_so(cli) -> None:
    """Before: a traceback fragment after 21 s (port 5000 is AirPlay's on macOS)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli({}, "local-aws", "--port", str(port))
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"error: port {port} on 127.0.0.1 is in use (Address already in use): choose another "
        "with --port (or LOCAL_AWS_PORT)"
    )


@pytest.mark.items(5)
def test_a_skipped_run_prints_no_log_line(aws: EmbeddedAws, cli) -> None:
    """Before, a skipped run dumped Powertools' JSON WARNING line on stderr."""
    from table_sync.state import StateStore

    env = aws.lambda_env(STATE_TABLE=aws.state_table)
    store = StateStore(aws.account_b().client("dynamodb"), aws.state_table)
    store.acquire_lease(f"dynamodb://{aws.destination_table}", "other-run", 600)
    result = cli(env, "run")
    assert result.exit_code == 75
    assert result.stderr.startswith("skipped: run other-run holds the lease")
    assert '"level"' not in result.stderr
