"""Every way handle_event can fail is logged ("sync failed") and counted (RunsFailed) before it
reaches Lambda; only table-sync's own messages are logged, never another exception's."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest

from table_sync import function
from table_sync.errors import ConfigurationError, SourceAccessError
from table_sync.observability import logger, metrics
from tests.unit.test_settings import BASE


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    previous = logger.registered_handler.setStream(stream)  # type: ignore[attr-defined]
    metrics.clear_metrics()
    try:
        yield stream
    finally:
        logger.registered_handler.setStream(previous)  # type: ignore[attr-defined]
        metrics.clear_metrics()


def _failure(logs: io.StringIO) -> dict[str, object]:
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    (failed,) = [line for line in lines if line["message"] == "sync failed"]
    assert "RunsFailed" in metrics.metric_set
    return failed


def test_an_unreachable_aws_is_logged_and_counted(
    logs: io.StringIO, lambda_context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No AWS here: the tests' default endpoint refuses connections. botocore's retries are
    made without their waits."""
    from botocore.retries import standard

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, ctx: 0.0)
    with pytest.raises(SourceAccessError, match="EndpointConnectionError"):
        function.handle_event({"trigger": "backfill"}, lambda_context, environ=BASE)
    failed = _failure(logs)
    assert failed["error_kind"] == "SourceAccessError"
    assert "EndpointConnectionError" in str(failed["error"])


def test_bad_settings_are_logged_and_counted(logs: io.StringIO, lambda_context) -> None:
    with pytest.raises(ConfigurationError):
        function.handle_event({"trigger": "backfill"}, lambda_context, environ={})
    assert "SOURCE_ROLE_ARN" in str(_failure(logs)["error"])


def test_an_unexpected_error_is_logged_by_kind_only(
    logs: io.StringIO, lambda_context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Injected: a bug deep in a run, whose message happens to quote a value."""

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("value 123-45-6789 was not expected")

    monkeypatch.setattr(function, "run_step", broken)
    with pytest.raises(RuntimeError):
        function.handle_event({"trigger": "backfill"}, lambda_context, environ=BASE)
    failed = _failure(logs)
    assert failed["error_kind"] == "RuntimeError"
    assert "123-45-6789" not in logs.getvalue()
