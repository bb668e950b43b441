"""The three ways the function is started, normalised into one :class:`Invocation`.

* an EventBridge rule's ``Scheduled Event`` (``source: aws.events``), or the same envelope from
  EventBridge Scheduler (``source: aws.scheduler``);
* the ``Input`` our EventBridge Scheduler schedule sends (``{"trigger": "scheduler", ...}``),
  delivered as the whole event, not wrapped in an envelope;
* a manual backfill (``{"trigger": "backfill", ...}``) with optional overrides.

Every event carries an ``id`` that becomes the correlation id of the run's logs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from table_sync.errors import EventError
from table_sync.models.destination import Destination
from table_sync.models.settings import describe_validation_error

Trigger = Literal["schedule", "scheduler", "backfill", "segment", "finalize"]


class ScheduledEvent(EventBridgeModel):
    """An EventBridge ``Scheduled Event``.

    ``version`` defaults to "0": ``sam local generate-event cloudwatch scheduled-event`` leaves it
    out, and nothing here depends on it.
    """

    version: str = "0"
    source: Literal["aws.events", "aws.scheduler"]
    detail_type: Literal["Scheduled Event"] = Field(alias="detail-type")


class SchedulerInput(BaseModel):
    """The Input of our EventBridge Scheduler schedule (see template.yaml)."""

    model_config = ConfigDict(extra="forbid")

    trigger: Literal["scheduler"]
    id: str = Field(min_length=1, max_length=256)
    schedule_arn: str | None = None
    scheduled_time: datetime | None = None
    attempt: int | None = Field(None, ge=0)


RUN_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,80}$"
RunId = Annotated[str, Field(pattern=RUN_ID_PATTERN)]


class BackfillRequest(BaseModel):
    """A manual run: ``aws lambda invoke --payload '{"trigger": "backfill", ...}'``.

    A ``run_id`` makes retries of the same request resume the same run.
    """

    model_config = ConfigDict(extra="forbid")

    trigger: Literal["backfill"]
    id: str | None = Field(None, min_length=1, max_length=256)
    run_id: RunId | None = None
    dry_run: bool = False
    # Decrypt and write every item, not only those changed since their copies were made.
    full: bool = False
    page_size: int | None = Field(None, ge=1, le=100_000)
    destination: Destination | None = None


class SegmentRequest(BaseModel):
    """One worker step of a parallel run (what the state machine sends, until ``done``)."""

    model_config = ConfigDict(extra="forbid")

    trigger: Literal["segment"]
    run_id: RunId
    segment: int = Field(ge=0, le=999_999)
    total_segments: int = Field(ge=1, le=1_000_000)
    id: str | None = Field(None, min_length=1, max_length=256)
    dry_run: bool = False
    full: bool = False


class FinalizeRequest(BaseModel):
    """Finish a parallel run once every segment is done: manifests, sweep, lease."""

    model_config = ConfigDict(extra="forbid")

    trigger: Literal["finalize"]
    run_id: RunId
    total_segments: int = Field(ge=1, le=1_000_000)
    id: str | None = Field(None, min_length=1, max_length=256)


_REQUESTS: dict[str, type[BaseModel]] = {
    "scheduler": SchedulerInput,
    "backfill": BackfillRequest,
    "segment": SegmentRequest,
    "finalize": FinalizeRequest,
}


class Invocation(BaseModel):
    """What a run was asked to do, whatever started it."""

    model_config = ConfigDict(frozen=True)

    trigger: Trigger
    event_id: str | None = None
    time: datetime | None = None
    run_id: str | None = None
    dry_run: bool = False
    full: bool = False
    page_size: int | None = None
    destination: Destination | None = None
    segment: int | None = None
    total_segments: int | None = None


def parse_event(event: Any) -> Invocation:
    """Validate an invocation event; raise :class:`EventError` naming the bad field."""
    if not isinstance(event, dict):
        raise EventError([f"event: must be a JSON object, not {type(event).__name__}"])
    try:
        if "detail-type" in event:
            scheduled = ScheduledEvent.model_validate(event)
            return Invocation(trigger="schedule", event_id=scheduled.id, time=scheduled.time)
        if "trigger" not in event:
            raise EventError(
                [
                    "event: not a Scheduled Event (no 'detail-type') and no 'trigger' "
                    "('scheduler' or 'backfill')"
                ]
            )
        model = _REQUESTS.get(event["trigger"]) if isinstance(event["trigger"], str) else None
        if model is None:
            raise EventError(
                ["event.trigger: must be 'scheduler', 'backfill', 'segment' or 'finalize'"]
            )
        request = model.model_validate(event)
    except ValidationError as exc:
        raise EventError(describe_validation_error(exc, prefix="event.")) from None
    fields = dict(request)  # the request's own fields, as validated
    fields.pop("schedule_arn", None)
    fields.pop("attempt", None)
    if "scheduled_time" in fields:
        fields["time"] = fields.pop("scheduled_time")
    return Invocation(trigger=fields.pop("trigger"), event_id=fields.pop("id"), **fields)
