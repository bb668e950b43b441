"""Provision the embedded AWS as a user sets up the real accounts.

AccountA: the KMS key and ``my-table`` with KMS-encrypted attributes, as they are before
table-sync. Then both templates, deployed through the embedded AWS's CloudFormation
(:mod:`.stacks`): AccountB's template.yaml (the function role, the copy table, the quarantine
and state tables, the copy bucket and key), and AccountA's source-account/template.yaml (the
reader role, trusting the function role and AccountB's operator role). No IAM policy of either
template is written here again: the roles are the stacks'. Only the operator's role, which is a
person's own and in no template, is made here, from the deployed function role's policy.
"""

from __future__ import annotations

import base64
import copy
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from table_sync.items import Item
from table_sync_dev.local.accounts import (
    ACCOUNT_A,
    ACCOUNT_B,
    ADMIN_ROLE,
    REGION,
    Account,
    Credentials,
    admin,
    assume,
)
from table_sync_dev.local.stacks import (
    Deployment,
    deploy_table_sync,
    function_environment,
    put_role_policies,
    role_policies,
)

T = TypeVar("T")

SOURCE_TABLE = "my-table"
DESTINATION_TABLE = "my-table-copy"
DESTINATION_BUCKET = f"table-sync-copy-{ACCOUNT_B}"
QUARANTINE_TABLE = "table-sync-quarantine"
STATE_TABLE = "table-sync-state"
READER_ROLE = "table-sync-source-reader"
# AccountB's stand-in for a person at a shell: `table-sync run`/`verify` against local-aws.
OPERATOR_ROLE = "table-sync-operator"
FUNCTION_NAME = "table-sync"
KEY_ALIAS = "alias/my-table"
# Which attributes hold KMS ciphertexts, and how: Binary, base64 text, and binary plaintext.
ENCRYPTED_ATTRIBUTES = ("ssn", "card", "api_secret")


def operator_policy(function: dict[str, Any], bucket: str) -> dict[str, Any]:
    """What a person running `table-sync run` and `verify` from a shell needs: the deployed
    function role's rights (read back from IAM, not written again here), and reading the S3
    copies back. The operator's role is the operator's own, in no template."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            *function["Statement"],
            {
                "Sid": "ReadCopyObjects",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            },
        ],
    }


ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


def account_trust(account_id: str) -> dict[str, Any]:
    """A trust policy admitting the account's own principals (its people and roles)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }


def key_schema(partition: tuple[str, str], sort: tuple[str, str] | None = None) -> dict[str, Any]:
    """CreateTable's key arguments (on-demand) from (name, type) of the partition and sort key."""
    keys = [(partition, "HASH"), *([(sort, "RANGE")] if sort else [])]
    return {
        "KeySchema": [{"AttributeName": name, "KeyType": role} for (name, _), role in keys],
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": kind} for (name, kind), _ in keys
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }


KEY_SCHEMA_PK = key_schema(("pk", "S"))
QUARANTINE_KEY_SCHEMA = key_schema(("item", "S"), ("run_id", "S"))
STATE_KEY_SCHEMA = key_schema(("id", "S"))


def create_table(ddb: Any, name: str, schema: dict[str, Any], **extra: Any) -> str:
    """Create a table; returns its ARN."""
    return str(ddb.create_table(TableName=name, **schema, **extra)["TableDescription"]["TableArn"])


def create_bucket(s3: Any, name: str) -> None:
    """A copy bucket as template.yaml makes it: default encryption, public access blocked."""
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_encryption(
        Bucket=name,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    s3.put_public_access_block(
        Bucket=name,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )


def put_items(ddb: Any, table: str, items: list[Item]) -> None:
    """BatchWriteItem, 25 at a time (moto never leaves items unprocessed)."""
    for start in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        ddb.batch_write_item(RequestItems={table: batch})


@dataclass
class EmbeddedAws:
    """What :func:`provision` made, and what a run needs to reach it.

    :meth:`isolated` gives a view with tables and a bucket of its own (the tests' isolation by
    name: one provisioning, many independent worlds on one server).
    """

    endpoint: str
    key_arn: str
    reader_role_arn: str
    function_role_arn: str
    source_table_arn: str
    source_table: str = SOURCE_TABLE
    destination_table: str = DESTINATION_TABLE
    quarantine_table: str = QUARANTINE_TABLE
    state_table: str = STATE_TABLE
    bucket: str = DESTINATION_BUCKET
    external_id: str | None = None
    # AccountB's operator role (see OPERATOR_ROLE); the reader role trusts it too.
    operator_role_arn: str = ""
    # The isolation name of a view (see isolated); empty for what provision made.
    name: str = ""
    # The stacks this view's roles, copy table and bucket came from.
    deployment: Deployment | None = field(default=None, repr=False)
    # The copy each item should become, by pk; and the source items as stored (encrypted).
    expected: dict[str, Item] = field(default_factory=dict)
    stored: dict[str, Item] = field(default_factory=dict, repr=False)
    # Shared by every view: the admin sessions and the function role's credentials.
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def account_a(self) -> Account:
        return self._cached(f"admin:{ACCOUNT_A}", lambda: admin(self.endpoint, ACCOUNT_A))

    def account_b(self) -> Account:
        return self._cached(f"admin:{ACCOUNT_B}", lambda: admin(self.endpoint, ACCOUNT_B))

    def function_credentials(self) -> Credentials:
        """What Lambda hands the function: a session of its execution role in AccountB."""
        return self._cached(
            f"function:{self.function_role_arn}",
            lambda: assume(self.endpoint, self.function_role_arn, session_name=FUNCTION_NAME),
        )

    def operator_credentials(self) -> Credentials:
        """A session of AccountB's operator role: a person's shell running `table-sync`."""
        return self._cached(
            f"operator:{self.operator_role_arn}",
            lambda: assume(self.endpoint, self.operator_role_arn, session_name="operator"),
        )

    def sessions(self) -> None:
        """Make every session this view hands out now: with IAM enforced, the AssumeRoles that
        make them (with moto's own keys, no IAM user) would be refused."""
        self.account_a(), self.account_b(), self.function_credentials()
        if self.operator_role_arn:
            self.operator_credentials()

    def _cached(self, key: str, make: Callable[[], T]) -> T:
        if key not in self._cache:
            self._cache[key] = make()
        value: T = self._cache[key]
        return value

    def isolated(self, name: str, *, items: int | None = None) -> EmbeddedAws:
        """A view with its own source table (``my-table-<name>``, holding the first ``items``
        of this one's items as stored: already encrypted, so no KMS call), and its own empty
        copy, quarantine and state tables and bucket, all named after ``name``."""
        keys = sorted(self.stored)[: len(self.stored) if items is None else items]
        view = replace(
            self,
            name=name,
            source_table=f"{SOURCE_TABLE}-{name}",
            destination_table=f"{DESTINATION_TABLE}-{name}",
            quarantine_table=f"{QUARANTINE_TABLE}-{name}",
            state_table=f"{STATE_TABLE}-{name}",
            bucket=f"table-sync-copy-{name}",
            expected=copy.deepcopy({k: self.expected[k] for k in keys}),
            stored={k: self.stored[k] for k in keys},
        )
        ddb_a, ddb_b = self.account_a().client("dynamodb"), self.account_b().client("dynamodb")
        view.source_table_arn = create_table(ddb_a, view.source_table, KEY_SCHEMA_PK)
        put_items(ddb_a, view.source_table, list(view.stored.values()))
        create_table(ddb_b, view.destination_table, KEY_SCHEMA_PK)
        create_table(ddb_b, view.quarantine_table, QUARANTINE_KEY_SCHEMA)
        create_table(ddb_b, view.state_table, STATE_KEY_SCHEMA)
        create_bucket(self.account_b().client("s3"), view.bucket)
        return view

    def deployed(self, name: str, **parameters: str) -> EmbeddedAws:
        """A view with both templates deployed for it (stacks named after ``name``, its own
        reader role ``<role>-<name>``, reading this view's source table): its copy, quarantine
        and state tables, bucket and roles are the stacks', with the templates' policies. For
        the tests of what those policies allow; ``parameters`` go to template.yaml."""
        deployment = deploy_table_sync(
            self.account_a(),
            self.account_b(),
            stack=f"table-sync-{name}",
            reader_role=f"{READER_ROLE}-{name}",
            source_table=self.source_table,
            key_arn=self.key_arn,
            external_id=self.external_id,
            EncryptedAttributes=",".join(ENCRYPTED_ATTRIBUTES),
            **parameters,
        )
        return self._with_deployment(deployment, operator_role_arn="")

    def function_environment(self) -> dict[str, str]:
        """The deployed function's environment, as CloudFormation resolved template.yaml."""
        assert self.deployment is not None, "a view of provision() or deployed()"
        function = self.deployment.resources["SyncFunction"]
        return function_environment(self.account_b(), function)

    def _with_deployment(self, deployment: Deployment, *, operator_role_arn: str) -> EmbeddedAws:
        resources = deployment.resources
        return replace(
            self,
            reader_role_arn=deployment.reader_role_arn,
            function_role_arn=deployment.function_role_arn,
            destination_table=resources["CopyTable"],
            quarantine_table=resources["QuarantineTable"],
            state_table=resources["StateTable"],
            bucket=resources["CopyBucket"],
            deployment=deployment,
            operator_role_arn=operator_role_arn,
        )

    def named(self, base: str) -> str:
        """``base``, or ``base-<name>`` in an isolated view: a resource of this view's own."""
        return f"{base}-{self.name}" if self.name else base

    @property
    def reader_role_name(self) -> str:
        return self.reader_role_arn.rsplit("/", 1)[1]

    @property
    def function_role_name(self) -> str:
        return self.function_role_arn.rsplit("/", 1)[1]

    def settings_env(self, **overrides: str) -> dict[str, str]:
        env = {
            "SOURCE_ROLE_ARN": self.reader_role_arn,
            "SOURCE_TABLE_NAME": self.source_table,
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
    for account in (a, b):  # so that the admin sessions keep working once IAM is enforced
        account.client("iam").create_role(
            RoleName=ADMIN_ROLE,
            AssumeRolePolicyDocument=json.dumps(account_trust(account.account_id)),
        )
        account.client("iam").put_role_policy(
            RoleName=ADMIN_ROLE, PolicyName="admin", PolicyDocument=json.dumps(ADMIN_POLICY)
        )
    operator_role_arn = b.client("iam").create_role(
        RoleName=OPERATOR_ROLE, AssumeRolePolicyDocument=json.dumps(account_trust(ACCOUNT_B))
    )["Role"]["Arn"]

    # --- AccountA: the key and the table, as they are before table-sync ------------------
    kms = a.client("kms")
    key_arn = kms.create_key(Description="my-table attribute encryption")["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName=KEY_ALIAS, TargetKeyId=key_arn)
    table_arn = create_table(a.client("dynamodb"), SOURCE_TABLE, KEY_SCHEMA_PK)

    # --- both templates, deployed as README's Deploying section does ---------------------
    deployment = deploy_table_sync(
        a,
        b,
        stack="table-sync",
        reader_role=READER_ROLE,
        source_table=SOURCE_TABLE,
        key_arn=key_arn,
        external_id=external_id,
        operator_role_arns=[operator_role_arn],
        EncryptedAttributes=",".join(ENCRYPTED_ATTRIBUTES),
        CopyTableName=DESTINATION_TABLE,
        CopyBucketName=DESTINATION_BUCKET,
    )
    kms.put_key_policy(
        KeyId=key_arn,
        PolicyName="default",
        Policy=json.dumps(key_policy(ACCOUNT_A, deployment.key_policy_statement)),
    )
    function = role_policies(b, deployment.function_role_arn.rsplit("/", 1)[1])["table-sync"]
    put_role_policies(
        b, OPERATOR_ROLE, {"table-sync-operator": operator_policy(function, DESTINATION_BUCKET)}
    )

    env = EmbeddedAws(
        endpoint=endpoint,
        key_arn=key_arn,
        reader_role_arn="",
        function_role_arn="",
        source_table_arn=table_arn,
        external_id=external_id,
        _cache={f"admin:{ACCOUNT_A}": a, f"admin:{ACCOUNT_B}": b},
    )._with_deployment(deployment, operator_role_arn=operator_role_arn)
    write_items(env, count=items, seed=seed)
    return env


def key_policy(account_id: str, reader_statement: dict[str, Any]) -> dict[str, Any]:
    """The key's policy: the account administers it, and the source stack's KeyPolicyStatement
    output lets the reader role decrypt."""
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
            reader_statement,
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


def write_items(aws: EmbeddedAws, *, count: int, seed: int = 7) -> None:
    """Write ``count`` items with encrypted attributes to the source table, recording the
    stored items and the copies they should become."""
    kms = aws.account_a().client("kms")
    stored: list[Item] = []
    for plain, secrets in make_plain_items(count, seed):
        item, copy_item = dict(plain), dict(plain)
        for name, value in secrets.items():
            item[name] = encrypt_value(kms, aws.key_arn, name, value)
            copy_item[name] = {"S": value} if isinstance(value, str) else {"B": value}
        aws.expected[plain["pk"]["S"]] = copy_item
        aws.stored[plain["pk"]["S"]] = item
        stored.append(item)
    put_items(aws.account_a().client("dynamodb"), aws.source_table, stored)


def write_bulk_items(
    aws: EmbeddedAws, count: int, *, distinct: int = 20, prefix: str = "item"
) -> dict[str, Item]:
    """``count`` more items in the source table whose ``ssn`` holds one of ``distinct``
    ciphertexts (a large table that stays cheap to seed and decrypt); adds them to
    ``aws.expected`` and ``aws.stored``."""
    kms = aws.account_a().client("kms")
    pool = []
    for n in range(distinct):
        plaintext = f"{100 + n}-00-{5000 + n}"
        blob = kms.encrypt(KeyId=aws.key_arn, Plaintext=plaintext.encode())["CiphertextBlob"]
        pool.append((plaintext, blob))
    items: list[Item] = []
    for n in range(count):
        plaintext, blob = pool[n % distinct]
        key = f"{prefix}#{n:06d}"
        item = {"pk": {"S": key}, "n": {"N": str(n)}, "note": {"S": f"row {n}"}}
        aws.expected[key] = {**item, "ssn": {"S": plaintext}}
        aws.stored[key] = {**item, "ssn": {"B": blob}}
        items.append(aws.stored[key])
    put_items(aws.account_a().client("dynamodb"), aws.source_table, items)
    return aws.expected
