"""`table-sync run`: the same sync from a shell, with the caller's own credentials."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from table_sync.local.seed import EmbeddedAws
from table_sync.local.verify import differences, read_table


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "table_sync.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_run_from_a_shell_copies_and_prints_a_json_summary(aws: EmbeddedAws) -> None:
    env = {**os.environ, **aws.lambda_env(), "LOGNAME": "alice"}
    result = _cli(env, "run", "--json", "--page-size", "15")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)  # stdout is the summary alone; logs go to stderr
    assert summary["items_written"] == 40
    assert summary["pages"] == 3
    assert summary["trigger"] == "backfill"
    copy = read_table(aws.account_b().client("dynamodb"), aws.destination_table)
    assert differences(aws.expected, copy) == []


def test_options_override_the_environment_and_errors_exit_non_zero(aws: EmbeddedAws) -> None:
    env = {**os.environ, **aws.lambda_env()}
    result = _cli(env, "run", "--session-duration", "7200")
    assert result.returncode == 1
    assert "SOURCE_SESSION_DURATION: must be 900 to 3600 seconds" in result.stderr
    assert result.stdout == ""


def test_dry_run_writes_nothing_and_shows_a_table(aws: EmbeddedAws) -> None:
    env = {**os.environ, **aws.lambda_env()}
    result = _cli(env, "run", "--dry-run", "--destination", f"s3://{aws.bucket}/dry")
    assert result.returncode == 0, result.stderr
    assert "items scanned" in result.stdout
    assert "dry run" in result.stdout
    objects = aws.account_b().client("s3").list_objects_v2(Bucket=aws.bucket)
    assert objects.get("KeyCount", 0) == 0
