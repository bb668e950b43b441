"""ITEM_FORMAT=credstash against items written by the real credstash library in AccountA."""

from __future__ import annotations

import base64
from typing import Any

import credstash
import pytest

from table_sync.local.seed import EmbeddedAws
from table_sync.local.verify import read_table
from table_sync.models import Invocation, Settings
from table_sync.service import sync

TABLE = "credential-store"
CONTEXT = {"app": "billing", "env": "prod"}
SECRETS = [  # name, version, secret, digest
    ("db.password", "1", "hunter2", "SHA256"),
    ("db.password", "2", "correct horse battery staple", "SHA256"),
    ("api.token", "1", "tok_ünïcødé_✓", "SHA512"),
    ("smtp.password", "3", "p@ss word with spaces", "SHA"),
]


def _credstash_clients(aws: EmbeddedAws) -> dict[str, Any]:
    session = aws.account_a().session()
    return {
        "kms": session.client("kms", endpoint_url=aws.endpoint),
        "dynamodb": session.resource("dynamodb", endpoint_url=aws.endpoint),
    }


@pytest.fixture
def credstash_table(aws: EmbeddedAws) -> EmbeddedAws:
    a = aws.account_a()
    a.client("dynamodb").create_table(  # the schema credstash's createDdbTable makes
        TableName=TABLE,
        KeySchema=[
            {"AttributeName": "name", "KeyType": "HASH"},
            {"AttributeName": "version", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "name", "AttributeType": "S"},
            {"AttributeName": "version", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    clients = _credstash_clients(aws)
    for name, version, secret, digest in SECRETS:
        credstash.putSecret(
            name,
            secret,
            version=version,
            kms_key=aws.key_arn,
            table=TABLE,
            context=CONTEXT,
            digest=digest,
            **clients,
        )
    aws.account_b().client("dynamodb").create_table(
        TableName="credstash-copy",
        KeySchema=[
            {"AttributeName": "name", "KeyType": "HASH"},
            {"AttributeName": "version", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "name", "AttributeType": "S"},
            {"AttributeName": "version", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return aws


def _settings(aws: EmbeddedAws, **env: str) -> Settings:
    return Settings.from_env(
        aws.settings_env(
            ITEM_FORMAT="credstash",
            ENCRYPTED_ATTRIBUTES="",
            SOURCE_TABLE_NAME=TABLE,
            KMS_ENCRYPTION_CONTEXT='{"app": "billing", "env": "prod"}',
            DESTINATION="dynamodb://credstash-copy",
            **env,
        )
    )


def _copy(aws: EmbeddedAws) -> dict[tuple[str, str], dict[str, Any]]:
    items = aws.account_b().client("dynamodb").scan(TableName="credstash-copy")["Items"]
    return {(i["name"]["S"], i["version"]["S"]): i for i in items}


def test_credstash_items_arrive_in_plaintext_equal_to_credstash_getsecret(
    credstash_table: EmbeddedAws, function_session
) -> None:
    aws = credstash_table
    summary = sync(
        _settings(aws),
        Invocation(trigger="backfill"),
        base_session=function_session,
        role_session_name="test",
    )
    assert summary.items_written == len(SECRETS)
    assert summary.items_quarantined == 0
    copy = _copy(aws)
    clients = _credstash_clients(aws)
    for name, version, _secret, _digest in SECRETS:
        expected = credstash.getSecret(
            name, version=version, table=TABLE, context=CONTEXT, **clients
        )
        item = copy[(name, credstash.paddedInt(version))]
        assert item["contents"] == {"S": expected}
        # The wrapping is not copied: no data key, HMAC or digest in AccountB.
        assert not {"key", "hmac", "digest"} & item.keys()


def test_string_hmac_from_older_writers_is_read(
    credstash_table: EmbeddedAws, function_session
) -> None:
    aws = credstash_table
    ddb = aws.account_a().client("dynamodb")
    key = {"name": {"S": "db.password"}, "version": {"S": credstash.paddedInt("1")}}
    stored = ddb.get_item(TableName=TABLE, Key=key)["Item"]
    ddb.update_item(
        TableName=TABLE,
        Key=key,
        UpdateExpression="SET hmac = :h",
        ExpressionAttributeValues={":h": {"S": stored["hmac"]["B"].decode()}},
    )
    sync(
        _settings(aws),
        Invocation(trigger="backfill"),
        base_session=function_session,
        role_session_name="test",
    )
    assert _copy(aws)[("db.password", credstash.paddedInt("1"))]["contents"] == {"S": "hunter2"}


def test_tampered_contents_and_wrong_context_are_quarantined(
    credstash_table: EmbeddedAws, function_session
) -> None:
    aws = credstash_table
    ddb = aws.account_a().client("dynamodb")
    key = {"name": {"S": "api.token"}, "version": {"S": credstash.paddedInt("1")}}
    contents = base64.b64decode(ddb.get_item(TableName=TABLE, Key=key)["Item"]["contents"]["S"])
    tampered = bytes([contents[0] ^ 0x20]) + contents[1:]
    ddb.update_item(
        TableName=TABLE,
        Key=key,
        UpdateExpression="SET contents = :c",
        ExpressionAttributeValues={":c": {"S": base64.b64encode(tampered).decode()}},
    )
    credstash.putSecret(
        "other.context",
        "x",
        version="1",
        kms_key=aws.key_arn,
        table=TABLE,
        context={"app": "other"},
        **_credstash_clients(aws),
    )

    summary = sync(
        _settings(aws),
        Invocation(trigger="backfill"),
        base_session=function_session,
        role_session_name="test",
    )

    assert summary.items_quarantined == 2
    assert summary.items_written == len(SECRETS) - 1
    records = read_table(aws.account_b().client("dynamodb"), aws.quarantine_table, key="item")
    by_item = {k: (r["attribute"]["S"], r["error"]["S"]) for k, r in records.items()}
    padded = credstash.paddedInt("1")
    assert by_item == {
        f'{{name=S:"api.token", version=S:"{padded}"}}': ("contents", "HmacMismatch"),
        f'{{name=S:"other.context", version=S:"{padded}"}}': ("key", "InvalidCiphertextException"),
    }
    assert ("api.token", padded) not in _copy(aws)
