"""ITEM_FORMAT=ddb-encryption-client against items written by dynamodb-encryption-sdk in AccountA."""

from __future__ import annotations

from typing import Any

import pytest

from table_sync.errors import ConfigurationError
from table_sync.models import Invocation, Settings
from table_sync.runs import run_step
from table_sync_dev.local.formats_seed import (
    EC_COPY,
    EC_TABLE,
    ec_env,
    ec_key,
    seed_ddb_encryption_client,
)
from table_sync_dev.local.seed import EmbeddedAws
from table_sync_dev.local.verify import differences, read_table


def _copy(aws: EmbeddedAws) -> dict[str, dict[str, Any]]:
    return {
        ec_key(i): i
        for i in aws.account_b().client("dynamodb").scan(TableName=aws.named(EC_COPY))["Items"]
    }


def _run(aws: EmbeddedAws, session: Any, encrypted: tuple[str, ...] = (), **env: str) -> Any:
    settings = Settings.from_env({**ec_env(aws, encrypted), **env})
    return run_step(
        settings, Invocation(trigger="backfill"), base_session=session, role_session_name="test"
    )


def test_default_actions_every_non_key_attribute_encrypted(
    aws: EmbeddedAws, function_session, one_by_one: list[int]
) -> None:
    truth = seed_ddb_encryption_client(aws)
    raw = aws.account_a().client("dynamodb").scan(TableName=aws.named(EC_TABLE))["Items"][0]
    assert "B" in raw["ssn"]  # really encrypted at rest in AccountA
    assert "*amzn-ddb-map-sig*" in raw

    summary = _run(aws, function_session)

    copy = _copy(aws)
    assert differences(truth, copy) == []
    assert all(
        "*amzn-ddb-map-sig*" not in i and "*amzn-ddb-map-desc*" not in i for i in copy.values()
    )
    assert summary.items_written == 12
    assert summary.items_quarantined == 0
    assert summary.kms_requests == 12  # one data key per item
    assert one_by_one == []  # every data key sent with the page's, none after it


def test_named_encrypted_attributes_with_the_rest_signed(
    aws: EmbeddedAws, function_session
) -> None:
    truth = seed_ddb_encryption_client(aws, encrypted=("ssn", "photo"))
    _run(aws, function_session, ("ssn", "photo"), SOURCE_KEY_ATTRIBUTES="tenant,seq")
    assert differences(truth, _copy(aws)) == []


def test_altered_items_are_quarantined_by_signature(aws: EmbeddedAws, function_session) -> None:
    truth = seed_ddb_encryption_client(aws)
    ddb = aws.account_a().client("dynamodb")
    key = {"tenant": {"S": "tenant-1"}, "seq": {"N": "4"}}
    other = ddb.get_item(
        TableName=aws.named(EC_TABLE), Key={"tenant": {"S": "tenant-2"}, "seq": {"N": "5"}}
    )
    # Move another item's (validly encrypted) ssn into this one: only the signature catches it.
    ddb.update_item(
        TableName=aws.named(EC_TABLE),
        Key=key,
        UpdateExpression="SET ssn = :v",
        ExpressionAttributeValues={":v": other["Item"]["ssn"]},
    )

    summary = _run(aws, function_session)

    assert summary.items_quarantined == 1
    copy = _copy(aws)
    assert "tenant-1/4" not in copy
    del truth["tenant-1/4"]
    assert differences(truth, copy) == []
    records = read_table(aws.account_b().client("dynamodb"), aws.quarantine_table, key="item")
    (record,) = records.values()
    assert record["item"]["S"] == '{tenant=S:"tenant-1", seq=N:"4"}'
    assert record["error"]["S"] == "SignatureInvalid"


def test_the_key_must_be_known_before_anything_is_read(
    aws: EmbeddedAws, function_session, moto_server
) -> None:
    """To S3 there is no copy table to learn the key from: the setting is required up front."""
    with (
        moto_server.recording() as calls,
        pytest.raises(ConfigurationError, match="SOURCE_KEY_ATTRIBUTES: required"),
    ):
        _run(aws, function_session, DESTINATION=f"s3://{aws.bucket}/ec")
    assert calls == []
