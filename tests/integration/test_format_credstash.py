"""ITEM_FORMAT=credstash against items written by the real credstash library in AccountA."""

from __future__ import annotations

import base64
from typing import Any

import credstash
import pytest

from table_sync.models import Invocation, Settings
from table_sync.runs import run_step
from table_sync_dev.local.formats_seed import (
    CREDSTASH_COPY,
    CREDSTASH_TABLE,
    credstash_clients,
    credstash_env,
    seed_credstash,
)
from table_sync_dev.local.seed import EmbeddedAws
from table_sync_dev.local.verify import read_table


@pytest.fixture
def truth(aws: EmbeddedAws) -> dict[tuple[str, str], str]:
    return seed_credstash(aws)


def _run(aws: EmbeddedAws, session: Any) -> Any:
    return run_step(
        Settings.from_env(credstash_env(aws)),
        Invocation(trigger="backfill"),
        base_session=session,
        role_session_name="test",
    )


def _copy(aws: EmbeddedAws) -> dict[tuple[str, str], dict[str, Any]]:
    items = aws.account_b().client("dynamodb").scan(TableName=aws.named(CREDSTASH_COPY))["Items"]
    return {(i["name"]["S"], i["version"]["S"]): i for i in items}


def test_credstash_items_arrive_in_plaintext_equal_to_credstash_getsecret(
    aws: EmbeddedAws, truth: dict[tuple[str, str], str], function_session, one_by_one: list[int]
) -> None:
    summary = _run(aws, function_session)
    assert one_by_one == []  # every data key sent with the page's, none after it
    assert summary.kms_requests == 4
    assert summary.items_written == len(truth) == 4
    assert summary.items_quarantined == 0
    copy = _copy(aws)
    assert {k: i["contents"] for k, i in copy.items()} == {k: {"S": v} for k, v in truth.items()}
    for item in copy.values():  # the wrapping is not copied: no data key, HMAC or digest
        assert not {"key", "hmac", "digest"} & item.keys()


def test_string_hmac_from_older_writers_is_read(
    aws: EmbeddedAws, truth: dict[tuple[str, str], str], function_session
) -> None:
    ddb = aws.account_a().client("dynamodb")
    key = {"name": {"S": "db.password"}, "version": {"S": credstash.paddedInt("1")}}
    stored = ddb.get_item(TableName=aws.named(CREDSTASH_TABLE), Key=key)["Item"]
    assert "B" in stored["hmac"]  # boto3-era credstash stores the hex HMAC as Binary
    ddb.update_item(
        TableName=aws.named(CREDSTASH_TABLE),
        Key=key,
        UpdateExpression="SET hmac = :h",
        ExpressionAttributeValues={":h": {"S": stored["hmac"]["B"].decode()}},
    )
    _run(aws, function_session)
    assert _copy(aws)[("db.password", credstash.paddedInt("1"))]["contents"] == {"S": "hunter2"}


def test_tampered_contents_and_wrong_context_are_quarantined(
    aws: EmbeddedAws, truth: dict[tuple[str, str], str], function_session
) -> None:
    ddb = aws.account_a().client("dynamodb")
    key = {"name": {"S": "api.token"}, "version": {"S": credstash.paddedInt("1")}}
    contents = base64.b64decode(
        ddb.get_item(TableName=aws.named(CREDSTASH_TABLE), Key=key)["Item"]["contents"]["S"]
    )
    tampered = bytes([contents[0] ^ 0x20]) + contents[1:]
    ddb.update_item(
        TableName=aws.named(CREDSTASH_TABLE),
        Key=key,
        UpdateExpression="SET contents = :c",
        ExpressionAttributeValues={":c": {"S": base64.b64encode(tampered).decode()}},
    )
    credstash.putSecret(
        "other.context",
        "x",
        version="1",
        kms_key=aws.key_arn,
        table=aws.named(CREDSTASH_TABLE),
        context={"app": "other"},
        **credstash_clients(aws),
    )

    summary = _run(aws, function_session)

    assert summary.items_quarantined == 2
    assert summary.items_written == len(truth) - 1
    records = read_table(aws.account_b().client("dynamodb"), aws.quarantine_table, key="item")
    by_item = {k: (r["attribute"]["S"], r["error"]["S"]) for k, r in records.items()}
    padded = credstash.paddedInt("1")
    assert by_item == {
        f'{{name=S:"api.token", version=S:"{padded}"}}': ("contents", "HmacMismatch"),
        f'{{name=S:"other.context", version=S:"{padded}"}}': ("key", "InvalidCiphertextException"),
    }
    assert ("api.token", padded) not in _copy(aws)
