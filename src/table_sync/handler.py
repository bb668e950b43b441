"""The Lambda entry point: Powertools decorators and one call."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from table_sync.function import handle_event
from table_sync.observability import capture_lambda_handler, logger, metrics


# Every accepted event carries "id" (EventBridge's event id, the Scheduler execution id, or a
# backfill's own id): it becomes the correlation id of the run's log lines.
@logger.inject_lambda_context(correlation_id_path="id", clear_state=True)
@capture_lambda_handler  # Powertools' Tracer, only where tracing is on (see observability.py)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_event(event, context, environ=os.environ).model_dump(mode="json")
