"""Provision the embedded AWS exactly as the runbook sets up the real accounts.

AccountA: the KMS key, ``my-table`` with KMS-encrypted attributes, and the reader role that
allows only ``kms:Decrypt`` on the key and ``dynamodb:GetItem/Query/Scan`` on the table, trusting
AccountB's function role. AccountB: the function role (its only source-side right is
``sts:AssumeRole`` on the reader role), the destination table and the destination bucket.
"""

from __future__ import annotations

import base64
import json
import random
from dataclasses import dataclass, field
from typing import Any

from table_sync.items import Item
from table_sync.local.accounts import (
    ACCOUNT_A,
    ACCOUNT_B,
    REGION,
    Account,
    Credentials,
    admin,
    assume,
)

SOURCE_TABLE = "my-table"
DESTINATION_TABLE = "my-table-copy"
DESTINATION_BUCKET = f"table-sync-copy-{ACCOUNT_B}"
QUARANTINE_TABLE = "table-sync-quarantine"
STATE_TABLE = "table-sync-state"
READER_ROLE = "table-sync-source-reader"
FUNCTION_ROLE = "table-sync-function"
FUNCTION_NAME = "table-sync"
KEY_ALIAS = "alias/my-table"
# Which attributes hold KMS ciphertexts, and how: Binary, base64 text, and binary plaintext.
ENCRYPTED_ATTRIBUTES = ("ssn", "card", "api_secret")


def reader_policy(table_arn: str, key_arn: str) -> dict[str, Any]:
    """The seed's permission policy, exactly: nothing else is needed to read and decrypt."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadTable",
                "Effect": "Allow",
                "Action": ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan"],
                "Resource": table_arn,
            },
            {
                "Sid": "DecryptAttributes",
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": key_arn,
            },
        ],
    }


def reader_trust_policy(function_role_arn: str, external_id: str | None) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"AWS": function_role_arn},
        "Action": "sts:AssumeRole",
    }
    if external_id:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return {"Version": "2012-10-17", "Statement": [statement]}


def function_policy(
    reader_role_arn: str, table_arn: str, bucket: str, quarantine_arn: str
) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AssumeSourceReader",
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Resource": reader_role_arn,
            },
            {
                "Sid": "WriteCopyTable",
                "Effect": "Allow",
                "Action": ["dynamodb:DescribeTable", "dynamodb:BatchWriteItem"],
                "Resource": table_arn,
            },
            {
                "Sid": "WriteCopyObjects",
                "Effect": "Allow",
                "Action": "s3:PutObject",
                "Resource": f"arn:aws:s3:::{bucket}/*",
            },
            {
                "Sid": "RecordQuarantine",
                "Effect": "Allow",
                "Action": "dynamodb:PutItem",
                "Resource": quarantine_arn,
            },
        ],
    }


LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


@dataclass
class EmbeddedAws:
    """What :func:`provision` made, and what a run needs to reach it."""

    endpoint: str
    key_arn: str
    reader_role_arn: str
    function_role_arn: str
    source_table_arn: str
    destination_table: str = DESTINATION_TABLE
    quarantine_table: str = QUARANTINE_TABLE
    state_table: str = STATE_TABLE
    bucket: str = DESTINATION_BUCKET
    external_id: str | None = None
    expected: dict[str, Item] = field(default_factory=dict)

    def account_a(self) -> Account:
        return admin(self.endpoint, ACCOUNT_A)

    def account_b(self) -> Account:
        return admin(self.endpoint, ACCOUNT_B)

    def function_credentials(self) -> Credentials:
        """What Lambda hands the function: a session of its execution role in AccountB."""
        return assume(self.endpoint, self.function_role_arn, session_name=FUNCTION_NAME)

    def settings_env(self, **overrides: str) -> dict[str, str]:
        env = {
            "SOURCE_ROLE_ARN": self.reader_role_arn,
            "SOURCE_TABLE_NAME": SOURCE_TABLE,
            "SOURCE_KMS_KEY_ARN": self.key_arn,
            "ENCRYPTED_ATTRIBUTES": ",".join(ENCRYPTED_ATTRIBUTES),
            "DESTINATION": f"dynamodb://{self.destination_table}",
            "QUARANTINE": f"dynamodb://{self.quarantine_table}",
        }
        if self.external_id:
            env["SOURCE_EXTERNAL_ID"] = self.external_id
        env.update(overrides)
        return env

    def lambda_env(self, **overrides: str) -> dict[str, str]:
        """The function's whole environment: settings, region, endpoint and role credentials."""
        return {
            **self.settings_env(**overrides),
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_LAMBDA_FUNCTION_NAME": FUNCTION_NAME,
            **self.function_credentials().as_env(),
        }


def provision(
    endpoint: str,
    *,
    items: int = 120,
    external_id: str | None = "table-sync-demo",
    seed: int = 7,
) -> EmbeddedAws:
    a, b = admin(endpoint, ACCOUNT_A), admin(endpoint, ACCOUNT_B)
    function_role_arn = f"arn:aws:iam::{ACCOUNT_B}:role/{FUNCTION_ROLE}"

    # --- AccountA: key, table, reader role -------------------------------------------------
    kms = a.client("kms")
    key_arn = kms.create_key(Description="my-table attribute encryption")["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName=KEY_ALIAS, TargetKeyId=key_arn)
    ddb_a = a.client("dynamodb")
    table_arn = ddb_a.create_table(
        TableName=SOURCE_TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )["TableDescription"]["TableArn"]
    iam_a = a.client("iam")
    reader_role_arn = iam_a.create_role(
        RoleName=READER_ROLE,
        AssumeRolePolicyDocument=json.dumps(reader_trust_policy(function_role_arn, external_id)),
        MaxSessionDuration=3600,
    )["Role"]["Arn"]
    iam_a.put_role_policy(
        RoleName=READER_ROLE,
        PolicyName="source-read",
        PolicyDocument=json.dumps(reader_policy(table_arn, key_arn)),
    )
    kms.put_key_policy(
        KeyId=key_arn,
        PolicyName="default",
        Policy=json.dumps(key_policy(ACCOUNT_A, reader_role_arn)),
    )

    # --- AccountB: function role, destination table and bucket ---------------------------
    iam_b = b.client("iam")
    iam_b.create_role(RoleName=FUNCTION_ROLE, AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST))
    ddb_b = b.client("dynamodb")
    copy_arn = ddb_b.create_table(
        TableName=DESTINATION_TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        SSESpecification={"Enabled": True},
    )["TableDescription"]["TableArn"]
    quarantine_arn = ddb_b.create_table(
        TableName=QUARANTINE_TABLE,
        KeySchema=[
            {"AttributeName": "item", "KeyType": "HASH"},
            {"AttributeName": "run_id", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "item", "AttributeType": "S"},
            {"AttributeName": "run_id", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )["TableDescription"]["TableArn"]
    ddb_b.create_table(
        TableName=STATE_TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    iam_b.put_role_policy(
        RoleName=FUNCTION_ROLE,
        PolicyName="table-sync",
        PolicyDocument=json.dumps(
            function_policy(reader_role_arn, copy_arn, DESTINATION_BUCKET, quarantine_arn)
        ),
    )
    s3 = b.client("s3")
    s3.create_bucket(
        Bucket=DESTINATION_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    s3.put_bucket_encryption(
        Bucket=DESTINATION_BUCKET,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    s3.put_public_access_block(
        Bucket=DESTINATION_BUCKET,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )

    env = EmbeddedAws(
        endpoint=endpoint,
        key_arn=key_arn,
        reader_role_arn=reader_role_arn,
        function_role_arn=function_role_arn,
        source_table_arn=table_arn,
        external_id=external_id,
    )
    env.expected = write_items(a, key_arn, count=items, seed=seed)
    return env


def key_policy(account_id: str, reader_role_arn: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "KeyAdministration",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Sid": "TableSyncReaderDecrypt",
                "Effect": "Allow",
                "Principal": {"AWS": reader_role_arn},
                "Action": "kms:Decrypt",
                "Resource": "*",
            },
        ],
    }


def make_plain_items(count: int, seed: int = 7) -> list[tuple[Item, dict[str, str | bytes]]]:
    """Items in plaintext: (attributes stored as they are, attributes to encrypt)."""
    rng = random.Random(seed)  # noqa: S311 - demo data, not secrets
    out = []
    for n in range(count):
        plain: Item = {
            "pk": {"S": f"customer#{n:05d}"},
            "name": {
                "S": rng.choice(["Ada", "Grace", "Linus", "Barbara", "Ken", "Frances", "Zoë"])
            },
            "visits": {"N": str(rng.randint(0, 500))},
            "tags": {"SS": sorted({rng.choice(["gold", "eu", "beta", "new"]) for _ in range(2)})},
            "profile": {"M": {"tier": {"N": str(n % 3)}, "active": {"BOOL": n % 2 == 0}}},
            "avatar": {"B": bytes(rng.getrandbits(8) for _ in range(8))},
        }
        secrets: dict[str, str | bytes] = {
            "ssn": f"{rng.randint(100, 899)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}"
        }
        if n % 4 != 3:  # some items have no card: a missing attribute is not an error
            secrets["card"] = "".join(str(rng.randint(0, 9)) for _ in range(16))
        if n % 3 == 0:  # plaintext that is not UTF-8: copied as Binary
            secrets["api_secret"] = bytes([0xFF, 0xFE]) + bytes(
                rng.getrandbits(8) for _ in range(30)
            )
        out.append((plain, secrets))
    return out


def encrypt_value(kms: Any, key_arn: str, name: str, plaintext: str | bytes) -> dict[str, Any]:
    """Encrypt as the writer does: ``card`` as base64 text, the others as Binary."""
    data = plaintext.encode() if isinstance(plaintext, str) else plaintext
    blob = kms.encrypt(KeyId=key_arn, Plaintext=data)["CiphertextBlob"]
    return {"S": base64.b64encode(blob).decode()} if name == "card" else {"B": blob}


def write_items(account: Account, key_arn: str, *, count: int, seed: int = 7) -> dict[str, Item]:
    """Write ``count`` items with encrypted attributes to my-table; return the expected copies."""
    kms = account.client("kms")
    ddb = account.client("dynamodb")
    expected: dict[str, Item] = {}
    batch: list[dict[str, Any]] = []
    for plain, secrets in make_plain_items(count, seed):
        stored = dict(plain)
        copy = dict(plain)
        for name, value in secrets.items():
            stored[name] = encrypt_value(kms, key_arn, name, value)
            copy[name] = {"S": value} if isinstance(value, str) else {"B": value}
        expected[plain["pk"]["S"]] = copy
        batch.append({"PutRequest": {"Item": stored}})
        if len(batch) == 25:
            ddb.batch_write_item(RequestItems={SOURCE_TABLE: batch})
            batch = []
    if batch:
        ddb.batch_write_item(RequestItems={SOURCE_TABLE: batch})
    return expected


def write_bulk_items(
    aws: EmbeddedAws, count: int, *, distinct: int = 20, prefix: str = "item"
) -> dict[str, Item]:
    """``count`` more items in my-table whose ``ssn`` holds one of ``distinct`` ciphertexts
    (a large table that stays cheap to seed and decrypt); adds them to ``aws.expected``."""
    a = aws.account_a()
    kms, ddb = a.client("kms"), a.client("dynamodb")
    pool = []
    for n in range(distinct):
        plaintext = f"{100 + n}-00-{5000 + n}"
        pool.append(
            (
                plaintext,
                kms.encrypt(KeyId=aws.key_arn, Plaintext=plaintext.encode())["CiphertextBlob"],
            )
        )
    batch: list[dict[str, Any]] = []
    for n in range(count):
        plaintext, blob = pool[n % distinct]
        key = f"{prefix}#{n:06d}"
        item = {"pk": {"S": key}, "n": {"N": str(n)}, "note": {"S": f"row {n}"}}
        aws.expected[key] = {**item, "ssn": {"S": plaintext}}
        batch.append({"PutRequest": {"Item": {**item, "ssn": {"B": blob}}}})
        if len(batch) == 25:
            ddb.batch_write_item(RequestItems={SOURCE_TABLE: batch})
            batch = []
    if batch:
        ddb.batch_write_item(RequestItems={SOURCE_TABLE: batch})
    return aws.expected
