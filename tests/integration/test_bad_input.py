"""Every bad input fails with an error naming the field, and bad events and settings fail before
any AWS request (the moto server's own request recording shows none)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from table_sync.errors import (
    ConfigurationError,
    DecryptError,
    DestinationError,
    EventError,
    SourceAccessError,
)
from table_sync.handler import lambda_handler
from table_sync.local.seed import SOURCE_TABLE, EmbeddedAws
from table_sync.local.server import MotoServer
from table_sync.local.verify import read_table
from tests.conftest import load_event
from tests.integration.conftest import set_source_attribute

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


@pytest.mark.items(2)
@pytest.mark.parametrize(("event", "message"), BAD_EVENTS)
def test_bad_event_fails_before_any_request(
    event: Any, message: str, function_env, lambda_context, moto_server: MotoServer
) -> None:
    with moto_server.recording() as calls, pytest.raises(EventError) as raised:
        lambda_handler(event, lambda_context)
    assert message in str(raised.value)
    assert calls == []


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
    (
        "DESTINATION_KMS_KEY_ARN",
        "arn:aws:kms:eu-west-1:222222222222:key/k",
        "DESTINATION_KMS_KEY_ARN: only applies to an s3:// destination",
    ),
]


@pytest.mark.items(2)
@pytest.mark.parametrize(("name", "value", "message"), BAD_SETTINGS)
def test_bad_setting_fails_naming_the_variable_before_any_request(
    name: str,
    value: str | None,
    message: str,
    function_env,
    lambda_context,
    moto_server: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if value is None:
        monkeypatch.delenv(name)
    else:
        monkeypatch.setenv(name, value)
    with moto_server.recording() as calls, pytest.raises(ConfigurationError) as raised:
        lambda_handler(load_event("scheduled-event.json"), lambda_context)
    assert message in str(raised.value)
    assert calls == []


def test_secret_setting_values_are_not_echoed(function_env, lambda_context, monkeypatch) -> None:
    monkeypatch.setenv("SOURCE_EXTERNAL_ID", "s3cr3t value!")
    with pytest.raises(ConfigurationError) as raised:
        lambda_handler(load_event("scheduled-event.json"), lambda_context)
    assert "SOURCE_EXTERNAL_ID" in str(raised.value)
    assert "s3cr3t" not in str(raised.value)


def test_backfill_destination_override_is_checked_like_the_setting(
    function_env, lambda_context, moto_server: MotoServer
) -> None:
    event = {"trigger": "backfill", "destination": "dynamodb://a"}
    with moto_server.recording() as calls, pytest.raises(EventError, match=r"event\.destination"):
        lambda_handler(event, lambda_context)
    assert calls == []


def _tampered(blob: bytes) -> bytes:
    middle = len(blob) // 2
    return blob[:middle] + bytes([blob[middle] ^ 0x01]) + blob[middle + 1 :]


@pytest.mark.parametrize(
    ("make_value", "kind"),
    [
        (lambda aws, blob: {"B": _tampered(blob)}, "InvalidCiphertextException"),
        (lambda aws, blob: {"S": "not base64 at all!"}, "InvalidBase64"),
        (lambda aws, blob: {"N": "42"}, "UnsupportedType"),
        (
            lambda aws, blob: {
                "B": aws.account_a()
                .client("kms")
                .encrypt(
                    KeyId=aws.account_a().client("kms").create_key()["KeyMetadata"]["Arn"],
                    Plaintext=b"made with another key",
                )["CiphertextBlob"]
            },
            # AWS answers IncorrectKeyException when KeyId does not match; moto, AccessDenied.
            "IncorrectKeyException|AccessDeniedException",
        ),
    ],
    ids=["tampered", "bad-base64", "wrong-type", "wrong-key"],
)
def test_fail_fast_setting_fails_the_run_naming_key_and_attribute(
    make_value, kind: str, aws: EmbeddedAws, function_env, lambda_context, monkeypatch
) -> None:
    """ON_DECRYPT_ERROR=fail: the first undecryptable item stops the run (the default
    quarantines it instead: test_quarantine.py)."""
    monkeypatch.setenv("ON_DECRYPT_ERROR", "fail")
    original = (
        aws.account_a()
        .client("dynamodb")
        .get_item(TableName=SOURCE_TABLE, Key={"pk": {"S": "customer#00005"}})["Item"]["ssn"]
    )
    set_source_attribute(aws, "customer#00005", "ssn", make_value(aws, original.get("B", b"")))
    monkeypatch.setenv("PAGE_SIZE", "10")  # customer#00005 is not on every page
    with pytest.raises(DecryptError) as raised:
        lambda_handler(load_event("backfill.json"), lambda_context)
    error = raised.value
    assert error.item == '{pk=S:"customer#00005"}'
    assert error.attribute == "ssn"
    assert error.kind in kind.split("|")
    # The page holding the bad item was not written, not even partly decrypted.
    copy = read_table(aws.account_b().client("dynamodb"), aws.destination_table)
    assert "customer#00005" not in copy
    for item in copy.values():
        assert "S" in item["ssn"]  # whatever was written is fully decrypted


def test_missing_destination_table_fails_before_the_scan(
    function_env, lambda_context, monkeypatch, moto_server: MotoServer
) -> None:
    monkeypatch.setenv("DESTINATION", "dynamodb://no-such-table")
    with (
        moto_server.recording() as calls,
        pytest.raises(DestinationError, match="no-such-table: ResourceNotFoundException"),
    ):
        lambda_handler(load_event("scheduled-event.json"), lambda_context)
    assert "dynamodb:Scan" not in {c.name for c in calls}


def test_missing_source_table_names_the_setting(function_env, lambda_context, monkeypatch) -> None:
    monkeypatch.setenv("SOURCE_TABLE_NAME", "not-my-table")
    with pytest.raises(
        SourceAccessError,
        match=r"not-my-table failed: ResourceNotFoundException.*SOURCE_TABLE_NAME",
    ):
        lambda_handler(load_event("scheduled-event.json"), lambda_context)


def test_items_named_by_position_when_no_key_is_known(
    aws: EmbeddedAws, function_env, lambda_context, monkeypatch
) -> None:
    """To S3 with one page there is no key schema to learn: the error says how to get one."""
    blob = base64.b64encode(b"garbage").decode()
    set_source_attribute(aws, "customer#00001", "card", {"S": blob})
    monkeypatch.setenv("DESTINATION", f"s3://{aws.bucket}/x")
    monkeypatch.setenv("ON_DECRYPT_ERROR", "fail")
    with pytest.raises(DecryptError, match=r"set SOURCE_KEY_ATTRIBUTES"):
        lambda_handler(load_event("scheduled-event.json"), lambda_context)
    monkeypatch.setenv("SOURCE_KEY_ATTRIBUTES", "pk")
    with pytest.raises(DecryptError, match="customer#00001"):
        lambda_handler(load_event("scheduled-event.json"), lambda_context)
