"""Bad events and settings fail with an error naming the field, before any AWS request: every
HTTP request botocore would send is recorded (and refused), and none is."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.httpsession import URLLib3Session

from table_sync.errors import ConfigurationError, EventError
from table_sync.handler import lambda_handler
from tests.conftest import load_event
from tests.unit.test_settings import BASE


class Requests(list[str]):
    """The URLs botocore tried to send a request to."""


@pytest.fixture
def requests(monkeypatch: pytest.MonkeyPatch) -> Requests:
    sent = Requests()

    def record(self: URLLib3Session, request: Any) -> Any:
        sent.append(request.url)
        raise AssertionError(f"a request was sent: {request.method} {request.url}")

    monkeypatch.setattr(URLLib3Session, "send", record)
    return sent


@pytest.fixture
def function_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {**BASE, "SOURCE_EXTERNAL_ID": "table-sync-demo"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


BAD_EVENTS: list[tuple[Any, str]] = [
    ([], "event: must be a JSON object"),
    ({}, "no 'trigger'"),
    ({"trigger": "replay"}, "event.trigger: must be 'scheduler', 'backfill', 'segment' or"),
    ({"trigger": "backfill", "page_size": 0}, "event.page_size"),
    ({"trigger": "backfill", "dryrun": True}, "event.dryrun: Extra inputs are not permitted"),
    (
        {"trigger": "backfill", "destination": "ftp://x/y"},
        "event.destination: unknown scheme 'ftp'",
    ),
    ({"trigger": "backfill", "destination": "s3://Bad_Bucket"}, "event.destination: s3://"),
    ({"trigger": "scheduler"}, "event.id: required but not set"),
    ({**load_event("scheduled-event.json"), "detail-type": "Object Created"}, "event.detail-type"),
    ({**load_event("scheduled-event.json"), "source": "aws.s3"}, "event.source"),
]


@pytest.mark.parametrize(("event", "message"), BAD_EVENTS)
def test_bad_event_fails_before_any_request(
    event: Any, message: str, function_env, lambda_context, requests: Requests
) -> None:
    with pytest.raises(EventError) as raised:
        lambda_handler(event, lambda_context)
    assert message in str(raised.value)
    assert requests == []


BAD_SETTINGS = [
    ("SOURCE_ROLE_ARN", None, "SOURCE_ROLE_ARN: required but not set"),
    ("SOURCE_ROLE_ARN", "my-role", "SOURCE_ROLE_ARN: must be an IAM role ARN"),
    ("SOURCE_SESSION_DURATION", "7200", "SOURCE_SESSION_DURATION: must be 900 to 3600 seconds"),
    ("SOURCE_SESSION_DURATION", "600", "SOURCE_SESSION_DURATION: must be 900 to 3600 seconds"),
    ("SOURCE_KMS_KEY_ARN", "alias/my-table", "SOURCE_KMS_KEY_ARN: must be a KMS key ARN"),
    ("ENCRYPTED_ATTRIBUTES", None, "ENCRYPTED_ATTRIBUTES: required but not set"),
    ("ENCRYPTED_ATTRIBUTES", "ssn,,card", "ENCRYPTED_ATTRIBUTES: empty attribute name"),
    ("ENCRYPTED_ATTRIBUTES", "ssn,ssn", "ENCRYPTED_ATTRIBUTES: attribute named more than once"),
    ("DESTINATION", "my-table-copy", "DESTINATION: must be dynamodb://<table>"),
    ("DESTINATION", "dynamodb://x", "DESTINATION: dynamodb://<table>: the table name"),
    ("PAGE_SIZE", "0", "PAGE_SIZE: Input should be greater than or equal to 1"),
    ("PAGE_SIZE", "many", "PAGE_SIZE: Input should be a valid integer"),
    ("DRY_RUN", "perhaps", "DRY_RUN: Input should be a valid boolean"),
    ("SOURCE_EXTERNAL_ID", "x", "SOURCE_EXTERNAL_ID: must be 2-1224 characters"),
    ("DESTINATION_KMS_KEY_ARN", "key/k", "DESTINATION_KMS_KEY_ARN: must be a KMS key ARN"),
]


@pytest.mark.parametrize(("name", "value", "message"), BAD_SETTINGS)
def test_bad_setting_fails_naming_the_variable_before_any_request(
    name: str,
    value: str | None,
    message: str,
    function_env,
    lambda_context,
    requests: Requests,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if value is None:
        monkeypatch.delenv(name)
    else:
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as raised:
        lambda_handler(load_event("scheduled-event.json"), lambda_context)
    assert message in str(raised.value)
    assert requests == []


def test_secret_setting_values_are_not_echoed(function_env, lambda_context, monkeypatch) -> None:
    monkeypatch.setenv("SOURCE_EXTERNAL_ID", "s3cr3t value!")
    with pytest.raises(ConfigurationError) as raised:
        lambda_handler(load_event("scheduled-event.json"), lambda_context)
    assert "SOURCE_EXTERNAL_ID" in str(raised.value)
    assert "s3cr3t" not in str(raised.value)


def test_the_recorder_sees_a_request(function_env, lambda_context, requests: Requests) -> None:
    """The check above can fail: a valid event and settings do reach for AWS (AssumeRole)."""
    with pytest.raises(AssertionError, match="a request was sent"):
        lambda_handler(load_event("backfill.json"), lambda_context)
    assert (requests and "sts" in requests[0]) or requests


def test_backfill_destination_override_is_checked_like_the_setting(
    function_env, lambda_context, requests: Requests
) -> None:
    event = {"trigger": "backfill", "destination": "dynamodb://a"}
    with pytest.raises(EventError, match=r"event\.destination"):
        lambda_handler(event, lambda_context)
    assert requests == []
