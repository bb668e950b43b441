"""The Lambda function's work, behind handler.py's decorators: validate the settings and the
event, run one step, and report it as log lines and EMF metrics. Every failure, whatever its
kind, is logged and counted (RunsFailed) before it is raised to Lambda."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import boto3

from table_sync.aws.clients import new_session
from table_sync.aws.sts import session_name
from table_sync.errors import TableSyncError
from table_sync.models import Settings, SkippedRun, SyncSummary, parse_event
from table_sync.observability import keep_sdk_loggers_above_debug, logger, metrics
from table_sync.runs import apply_invocation, run_step


class LambdaContextLike(Protocol):
    @property
    def function_name(self) -> str: ...

    @property
    def aws_request_id(self) -> str: ...

    def get_remaining_time_in_millis(self) -> int: ...


def handle_event(
    event: Any,
    context: LambdaContextLike,
    *,
    environ: Mapping[str, str],
    base_session: boto3.Session | None = None,
) -> SyncSummary | SkippedRun:
    keep_sdk_loggers_above_debug()
    try:
        settings = Settings.from_env(environ)
        invocation = parse_event(event)
        summary = run_step(
            apply_invocation(settings, invocation),
            invocation,
            base_session=base_session or new_session(),
            role_session_name=session_name(context.function_name, context.aws_request_id),
            remaining_ms=context.get_remaining_time_in_millis,
        )
    except Exception as exc:
        metrics.add_metric(name="RunsFailed", unit="Count", value=1)
        # Only table-sync's own messages are logged: they are built from names and codes. Any
        # other exception's message could quote data, so only its type is.
        message = str(exc) if isinstance(exc, TableSyncError) else "unexpected error"
        logger.error("sync failed", extra={"error_kind": type(exc).__name__, "error": message})
        raise
    report(summary)
    return summary


def report(summary: SyncSummary | SkippedRun) -> None:
    """A finished step as metrics and one log line."""
    if isinstance(summary, SkippedRun):
        metrics.add_metric(name="RunsSkipped", unit="Count", value=1)
        return
    for name, (value, unit) in summary.metrics().items():
        metrics.add_metric(name=name, unit=unit, value=value)
    if summary.status == "succeeded":
        metrics.add_metric(name="RunsSucceeded", unit="Count", value=1)
    logger.info(f"sync {summary.status}", extra={"summary": summary.model_dump(mode="json")})
