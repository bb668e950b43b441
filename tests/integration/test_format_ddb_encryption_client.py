"""ITEM_FORMAT=ddb-encryption-client against items written by dynamodb-encryption-sdk in AccountA."""

from __future__ import annotations

from typing import Any

import pytest
from dynamodb_encryption_sdk.encrypted.client import EncryptedClient
from dynamodb_encryption_sdk.identifiers import CryptoAction
from dynamodb_encryption_sdk.material_providers.aws_kms import AwsKmsCryptographicMaterialsProvider
from dynamodb_encryption_sdk.structures import AttributeActions

from table_sync.errors import ConfigurationError
from table_sync.local.seed import EmbeddedAws
from table_sync.local.verify import differences, read_table
from table_sync.models import Invocation, Settings
from table_sync.service import sync

TABLE = "customer-secrets"
KEY_SCHEMA = {
    "KeySchema": [
        {"AttributeName": "tenant", "KeyType": "HASH"},
        {"AttributeName": "seq", "KeyType": "RANGE"},
    ],
    "AttributeDefinitions": [
        {"AttributeName": "tenant", "AttributeType": "S"},
        {"AttributeName": "seq", "AttributeType": "N"},
    ],
    "BillingMode": "PAY_PER_REQUEST",
}


def _items() -> list[dict[str, Any]]:
    return [
        {
            "tenant": {"S": f"tenant-{n % 3}"},
            "seq": {"N": str(n)},
            "ssn": {"S": f"{100 + n}-55-{1000 + n}"},
            "balance": {"N": str(n * 10)},
            "photo": {"B": bytes([n, 255, 0, n])},
            "tags": {"SS": ["a", f"t{n}"]},
            "notes": {"M": {"text": {"S": f"note {n}"}, "flag": {"BOOL": n % 2 == 0}}},
        }
        for n in range(12)
    ]


def _writer(aws: EmbeddedAws, actions: AttributeActions) -> EncryptedClient:
    session = aws.account_a().session()
    provider = AwsKmsCryptographicMaterialsProvider(
        key_id=aws.key_arn, botocore_session=session._session
    )
    return EncryptedClient(
        client=session.client("dynamodb", endpoint_url=aws.endpoint),
        materials_provider=provider,
        attribute_actions=actions,
    )


def _setup(aws: EmbeddedAws, actions: AttributeActions) -> dict[str, dict[str, Any]]:
    aws.account_a().client("dynamodb").create_table(TableName=TABLE, **KEY_SCHEMA)
    aws.account_b().client("dynamodb").create_table(TableName="secrets-copy", **KEY_SCHEMA)
    writer = _writer(aws, actions)
    for item in _items():
        writer.put_item(TableName=TABLE, Item=item)
    # What the library itself reads back: the truth the copy must equal.
    decrypted = writer.scan(TableName=TABLE)["Items"]
    return {f"{i['tenant']['S']}/{i['seq']['N']}": i for i in decrypted}


def _copy(aws: EmbeddedAws) -> dict[str, dict[str, Any]]:
    items = aws.account_b().client("dynamodb").scan(TableName="secrets-copy")["Items"]
    return {f"{i['tenant']['S']}/{i['seq']['N']}": i for i in items}


def _run(aws: EmbeddedAws, session: Any, **env: str) -> Any:
    defaults = {
        "ITEM_FORMAT": "ddb-encryption-client",
        "SOURCE_TABLE_NAME": TABLE,
        "DESTINATION": "dynamodb://secrets-copy",
    }
    settings = Settings.from_env(aws.settings_env(**{**defaults, **env}))
    return sync(
        settings, Invocation(trigger="backfill"), base_session=session, role_session_name="test"
    )


def test_default_actions_every_non_key_attribute_encrypted(
    aws: EmbeddedAws, function_session
) -> None:
    truth = _setup(aws, AttributeActions(default_action=CryptoAction.ENCRYPT_AND_SIGN))
    raw = aws.account_a().client("dynamodb").scan(TableName=TABLE)["Items"][0]
    assert "B" in raw["ssn"]  # really encrypted at rest in AccountA
    assert "*amzn-ddb-map-sig*" in raw

    summary = _run(aws, function_session, ENCRYPTED_ATTRIBUTES="")

    copy = _copy(aws)
    assert differences(truth, copy) == []
    assert all(
        "*amzn-ddb-map-sig*" not in i and "*amzn-ddb-map-desc*" not in i for i in copy.values()
    )
    assert summary.items_written == 12
    assert summary.items_quarantined == 0
    assert summary.kms_requests == 12  # one data key per item


def test_named_encrypted_attributes_with_the_rest_signed(
    aws: EmbeddedAws, function_session
) -> None:
    actions = AttributeActions(
        default_action=CryptoAction.SIGN_ONLY,
        attribute_actions={
            "ssn": CryptoAction.ENCRYPT_AND_SIGN,
            "photo": CryptoAction.ENCRYPT_AND_SIGN,
        },
    )
    truth = _setup(aws, actions)
    _run(
        aws, function_session, ENCRYPTED_ATTRIBUTES="ssn,photo", SOURCE_KEY_ATTRIBUTES="tenant,seq"
    )
    assert differences(truth, _copy(aws)) == []


def test_altered_items_are_quarantined_by_signature(aws: EmbeddedAws, function_session) -> None:
    truth = _setup(aws, AttributeActions(default_action=CryptoAction.ENCRYPT_AND_SIGN))
    ddb = aws.account_a().client("dynamodb")
    key = {"tenant": {"S": "tenant-1"}, "seq": {"N": "4"}}
    stored = ddb.get_item(TableName=TABLE, Key=key)["Item"]
    swapped = ddb.get_item(TableName=TABLE, Key={"tenant": {"S": "tenant-2"}, "seq": {"N": "5"}})[
        "Item"
    ]
    # Move another item's (validly encrypted) ssn into this one: only the signature catches it.
    ddb.update_item(
        TableName=TABLE,
        Key=key,
        UpdateExpression="SET ssn = :v",
        ExpressionAttributeValues={":v": swapped["ssn"]},
    )
    assert stored["ssn"] != swapped["ssn"]

    summary = _run(aws, function_session, ENCRYPTED_ATTRIBUTES="")

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
        _run(aws, function_session, ENCRYPTED_ATTRIBUTES="", DESTINATION=f"s3://{aws.bucket}/ec")
    assert calls == []
