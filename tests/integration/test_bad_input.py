"""Bad items and missing resources fail with an error naming the key, attribute or setting (bad
events and settings, which fail before any request: tests/unit/test_bad_input.py)."""

from __future__ import annotations

import base64

import pytest

from table_sync.errors import (
    DecryptError,
    DestinationError,
    SourceAccessError,
)
from table_sync.handler import lambda_handler
from table_sync_dev.local.seed import EmbeddedAws
from table_sync_dev.local.server import MotoServer
from table_sync_dev.local.verify import read_table
from tests.conftest import load_event
from tests.integration.conftest import set_source_attribute, source_item


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
    original = source_item(aws, "customer#00005")["ssn"]
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
        match=r"not-my-table failed: ResourceNotFoundException: SOURCE_TABLE_NAME names no table "
        r"in eu-west-1 \(the region of SOURCE_KMS_KEY_ARN; set SOURCE_REGION",
    ):
        lambda_handler(load_event("scheduled-event.json"), lambda_context)


@pytest.mark.items(3)
def test_a_key_that_does_not_exist_names_the_setting(
    aws: EmbeddedAws, function_env, lambda_context, monkeypatch
) -> None:
    """Before: `NotFoundException` on the first item, with nothing naming SOURCE_KMS_KEY_ARN."""
    missing = aws.key_arn.rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000"
    monkeypatch.setenv("SOURCE_KMS_KEY_ARN", missing)
    with pytest.raises(
        DecryptError, match=r"NotFoundException \(no such key: check SOURCE_KMS_KEY_ARN"
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
