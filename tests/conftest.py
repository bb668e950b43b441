"""Fixtures shared by unit and integration tests.

No test may reach real AWS: every test runs with dummy credentials, no config or credentials
files, and no instance metadata; integration tests point botocore at the embedded moto server
through AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from table_sync_dev.local.context import LocalLambdaContext

ROOT = Path(__file__).resolve().parents[1]
EVENTS_DIR = ROOT / "events"


@pytest.fixture(autouse=True, scope="session")
def _no_real_aws() -> Iterator[None]:
    patch = pytest.MonkeyPatch()
    for name in [
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ]:
        patch.delenv(name, raising=False)
    patch.setenv("AWS_ACCESS_KEY_ID", "not-a-real-key")
    patch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-real-secret")
    patch.delenv("AWS_SESSION_TOKEN", raising=False)
    patch.setenv("AWS_CONFIG_FILE", "/dev/null")
    patch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    patch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    patch.setenv("AWS_REGION", "eu-west-1")
    # An endpoint nothing listens on, until the integration fixture names the moto server.
    patch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    patch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    yield
    patch.undo()


@pytest.fixture
def lambda_context() -> LocalLambdaContext:
    return LocalLambdaContext(function_name="table-sync-test")


def load_event(name: str) -> dict[str, Any]:
    return dict(json.loads((EVENTS_DIR / name).read_text()))


EVENT_FILES = sorted(p.name for p in EVENTS_DIR.glob("*.json"))


# The suite's time on record, by kind: the container and deploy tests' cost stays visible.
KINDS = ("container", "deploy")
_spent: dict[str, float] = defaultdict(float)
_tests: dict[str, set[str]] = defaultdict(set)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Setup, call and teardown of every test, as each worker reports them."""
    kind = next((k for k in KINDS if k in report.keywords), "other")
    _spent[kind] += report.duration
    _tests[kind].add(report.nodeid)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _spent:
        return
    terminalreporter.section("test time by kind (summed over workers: not the wall clock)")
    for kind in (*KINDS, "other"):
        count = len(_tests[kind])
        terminalreporter.write_line(f"{kind:<10} {count:4d} tests {_spent[kind]:8.1f} s")
