from __future__ import annotations

import pytest

from table_sync.errors import EventError
from table_sync.models import S3Destination, parse_event
from tests.conftest import EVENT_FILES, load_event

EXPECTED_TRIGGERS = {
    "scheduled-event.json": "schedule",
    "scheduler-input.json": "scheduler",
    "backfill.json": "backfill",
    "backfill-dry-run.json": "backfill",
    "backfill-s3.json": "backfill",
    "segment.json": "segment",
}


def test_every_event_file_is_covered() -> None:
    assert set(EVENT_FILES) == set(EXPECTED_TRIGGERS)


@pytest.mark.parametrize("name", EVENT_FILES)
def test_each_event_file_parses_and_carries_its_id(name: str) -> None:
    event = load_event(name)
    invocation = parse_event(event)
    assert invocation.trigger == EXPECTED_TRIGGERS[name]
    assert invocation.event_id == event["id"]


def test_backfill_overrides() -> None:
    assert parse_event(load_event("backfill-dry-run.json")).dry_run is True
    assert parse_event(load_event("backfill-dry-run.json")).page_size == 25
    assert parse_event(load_event("backfill-s3.json")).destination == S3Destination(
        bucket="table-sync-copy-222222222222", prefix="exports/my-table"
    )


def test_sam_generate_event_shape_without_version_is_accepted() -> None:
    """`sam local generate-event cloudwatch scheduled-event` leaves out "version"."""
    event = load_event("scheduled-event.json")
    del event["version"]
    assert parse_event(event).trigger == "schedule"


def test_scheduler_envelope_with_string_detail_is_accepted() -> None:
    """EventBridge Scheduler's own envelope sends detail as the string "{}" (Powertools 6112)."""
    event = {**load_event("scheduled-event.json"), "source": "aws.scheduler", "detail": "{}"}
    assert parse_event(event).trigger == "schedule"


def test_scheduler_context_attributes_arrive_as_strings() -> None:
    event = {**load_event("scheduler-input.json"), "attempt": "2"}
    assert parse_event(event).trigger == "scheduler"


def test_backfill_without_id_is_fine() -> None:
    assert parse_event({"trigger": "backfill"}).event_id is None


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"trigger": "backfill", "page_size": -1}, "event.page_size"),
        ({"trigger": "backfill", "dry_run": "maybe"}, "event.dry_run"),
        ({"trigger": "scheduler", "id": ""}, "event.id"),
        ({"trigger": 3}, "event.trigger"),
    ],
)
def test_bad_fields_are_named(event: dict[str, object], field: str) -> None:
    with pytest.raises(EventError) as raised:
        parse_event(event)
    assert raised.value.problems[0].startswith(field + ":")
