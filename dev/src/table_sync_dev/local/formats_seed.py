"""Tables in the other two formats, written by the real client libraries, for the demo and tests.

credstash is a development dependency only (table-sync reads its format with ``cryptography``);
dynamodb-encryption-sdk is both the writer here and table-sync's reader of that format.
"""

from __future__ import annotations

from typing import Any

from table_sync.items import Item
from table_sync_dev.local.accounts import REGION
from table_sync_dev.local.seed import EmbeddedAws, key_schema

CREDSTASH_TABLE = "credential-store"
CREDSTASH_COPY = "credstash-copy"
CREDSTASH_CONTEXT = {"app": "billing", "env": "prod"}
CREDSTASH_SECRETS = [  # name, version, secret, digest
    ("db.password", "1", "hunter2", "SHA256"),
    ("db.password", "2", "correct horse battery staple", "SHA256"),
    ("api.token", "1", "tok_ünïcødé_✓", "SHA512"),
    ("smtp.password", "3", "p@ss word with spaces", "SHA"),
]
EC_TABLE = "customer-secrets"
EC_COPY = "customer-secrets-copy"
EC_KEY_SCHEMA = key_schema(("tenant", "S"), ("seq", "N"))
CREDSTASH_KEY_SCHEMA = key_schema(("name", "S"), ("version", "S"))


def credstash_clients(aws: EmbeddedAws) -> dict[str, Any]:
    session = aws.account_a().session()
    return {
        "kms": session.client("kms", endpoint_url=aws.endpoint),
        "dynamodb": session.resource("dynamodb", endpoint_url=aws.endpoint),
    }


def seed_credstash(aws: EmbeddedAws) -> dict[tuple[str, str], str]:
    """A credstash table in AccountA (credstash.putSecret) and an empty copy table in AccountB;
    returns what credstash.getSecret reads back, by (name, padded version)."""
    import credstash

    table = aws.named(CREDSTASH_TABLE)
    aws.account_a().client("dynamodb").create_table(TableName=table, **CREDSTASH_KEY_SCHEMA)
    aws.account_b().client("dynamodb").create_table(
        TableName=aws.named(CREDSTASH_COPY), **CREDSTASH_KEY_SCHEMA
    )
    clients = credstash_clients(aws)
    for name, version, secret, digest in CREDSTASH_SECRETS:
        credstash.putSecret(
            name,
            secret,
            version=version,
            kms_key=aws.key_arn,
            table=table,
            context=CREDSTASH_CONTEXT,
            digest=digest,
            **clients,
        )
    return {
        (name, credstash.paddedInt(version)): credstash.getSecret(
            name, version=version, table=table, context=CREDSTASH_CONTEXT, **clients
        )
        for name, version, _secret, _digest in CREDSTASH_SECRETS
    }


def credstash_env(aws: EmbeddedAws) -> dict[str, str]:
    return aws.settings_env(
        ITEM_FORMAT="credstash",
        ENCRYPTED_ATTRIBUTES="",
        SOURCE_TABLE_NAME=aws.named(CREDSTASH_TABLE),
        KMS_ENCRYPTION_CONTEXT='{"app": "billing", "env": "prod"}',
        DESTINATION=f"dynamodb://{aws.named(CREDSTASH_COPY)}",
    )


def ec_items(count: int = 12) -> list[Item]:
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
        for n in range(count)
    ]


def ec_key(item: Item) -> str:
    return f"{item['tenant']['S']}/{item['seq']['N']}"


def seed_ddb_encryption_client(
    aws: EmbeddedAws, encrypted: tuple[str, ...] = (), count: int = 12
) -> dict[str, Item]:
    """A table in AccountA written through the DynamoDB Encryption Client (every non-key
    attribute encrypted, or only ``encrypted`` with the rest signed) and an empty copy table in
    AccountB; returns what the library itself reads back."""
    from dynamodb_encryption_sdk.encrypted.client import EncryptedClient
    from dynamodb_encryption_sdk.identifiers import CryptoAction
    from dynamodb_encryption_sdk.material_providers.aws_kms import (
        AwsKmsCryptographicMaterialsProvider,
    )
    from dynamodb_encryption_sdk.structures import AttributeActions

    table = aws.named(EC_TABLE)
    aws.account_a().client("dynamodb").create_table(TableName=table, **EC_KEY_SCHEMA)
    aws.account_b().client("dynamodb").create_table(TableName=aws.named(EC_COPY), **EC_KEY_SCHEMA)
    actions = (
        AttributeActions(
            default_action=CryptoAction.SIGN_ONLY,
            attribute_actions=dict.fromkeys(encrypted, CryptoAction.ENCRYPT_AND_SIGN),
        )
        if encrypted
        else AttributeActions(default_action=CryptoAction.ENCRYPT_AND_SIGN)
    )
    session = aws.account_a().session()
    writer = EncryptedClient(
        client=session.client("dynamodb", endpoint_url=aws.endpoint),
        # The provider's own KMS client, pointed at the embedded AWS explicitly: it must never
        # fall back to a default (real) endpoint.
        materials_provider=AwsKmsCryptographicMaterialsProvider(
            key_id=aws.key_arn,
            botocore_session=session._session,
            regional_clients={REGION: session.client("kms", endpoint_url=aws.endpoint)},
        ),
        attribute_actions=actions,
    )
    for item in ec_items(count):
        writer.put_item(TableName=table, Item=item)
    return {ec_key(i): i for i in writer.scan(TableName=table)["Items"]}


def ec_env(aws: EmbeddedAws, encrypted: tuple[str, ...] = ()) -> dict[str, str]:
    return aws.settings_env(
        ITEM_FORMAT="ddb-encryption-client",
        ENCRYPTED_ATTRIBUTES=",".join(encrypted),
        SOURCE_TABLE_NAME=aws.named(EC_TABLE),
        DESTINATION=f"dynamodb://{aws.named(EC_COPY)}",
    )
