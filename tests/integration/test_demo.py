"""The README's demo command: the real sync on the embedded AWS, with its own check."""

from __future__ import annotations

import subprocess
import sys


def test_demo_check_passes() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "table_sync_dev.cli",
            "demo",
        ],  # `table-sync demo`, as make demo runs it
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "CHECK PASSED: all 120 items in both copies" in result.stdout
    # IAM is enforced in the demo's embedded AWS (before, a wrong ExternalId went through).
    assert "with IAM enforced, a wrong ExternalId is refused" in result.stdout
