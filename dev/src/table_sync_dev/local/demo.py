"""``make demo``: the real sync, end to end, on the embedded two-account AWS.

Starts moto on loopback, provisions AccountA and AccountB as the runbook does, then invokes the
real Lambda handler with the events in ``events/``: once to the DynamoDB destination and once to
S3, and checks every decrypted value against the plaintext the seed encrypted.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from collections.abc import Iterator, Mapping
from importlib import resources
from typing import Any

from table_sync.errors import SourceAccessError
from table_sync_dev.local.accounts import ACCOUNT_A, ACCOUNT_B
from table_sync_dev.local.context import LocalLambdaContext
from table_sync_dev.local.formats_seed import (
    CREDSTASH_COPY,
    CREDSTASH_TABLE,
    EC_COPY,
    EC_TABLE,
    credstash_env,
    ec_env,
    ec_key,
    seed_credstash,
    seed_ddb_encryption_client,
)
from table_sync_dev.local.seed import ENCRYPTED_ATTRIBUTES, SOURCE_TABLE, EmbeddedAws, provision
from table_sync_dev.local.server import MotoServer
from table_sync_dev.local.verify import differences, read_export, read_table

# The project's events/ (a link in the package, so the demo finds them wherever it is run from).
EVENTS = resources.files("table_sync_dev") / "events"


def load_event(name: str) -> dict[str, Any]:
    return dict(json.loads((EVENTS / name).read_text()))


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set the function's environment for the duration of one invocation, then restore ours."""
    saved = dict(os.environ)
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        del os.environ[name]
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def invoke(
    aws: EmbeddedAws, event: dict[str, Any], telemetry: io.StringIO, **settings: str
) -> dict[str, Any]:
    """Invoke the real handler; its log lines and EMF metrics are collected in ``telemetry``."""
    from table_sync.handler import lambda_handler
    from table_sync.observability import logger

    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.setStream(telemetry)
    try:
        with environment(aws.lambda_env(**settings)), contextlib.redirect_stdout(telemetry):
            return dict(lambda_handler(event, LocalLambdaContext()))
    finally:
        handler.setStream(previous)


def _refused(aws: EmbeddedAws, telemetry: io.StringIO, **settings: str) -> str:
    """The error a run with these settings fails with, or "" if it succeeds."""
    try:
        invoke(aws, load_event("backfill-dry-run.json"), telemetry, **settings)
    except SourceAccessError as exc:
        return f"refused: {exc}"
    return ""


def text_plaintexts(aws: EmbeddedAws) -> list[str]:
    """The seed's text plaintexts (the values that must never reach a log line)."""
    return [
        item[name]["S"]
        for item in aws.expected.values()
        for name in ENCRYPTED_ATTRIBUTES
        if name in item and "S" in item[name]
    ]


def leaked(secrets: list[str], text: str) -> int:
    """How many of ``secrets`` appear in the function's logs and metrics."""
    return sum(1 for secret in secrets if secret in text)


def _show(title: str, summary: Mapping[str, Any]) -> None:
    print(f"\n== {title}")
    for name in (
        "trigger",
        "item_format",
        "items_scanned",
        "items_decrypted",
        "attributes_decrypted",
        "items_written",
        "items_quarantined",
        "pages",
        "kms_requests",
        "kms_cache_hits",
        "assume_role_calls",
        "seconds",
        "location",
    ):
        print(f"   {name:<22} {summary[name]}")


def _preview(items: Mapping[str, Any], count: int = 3) -> None:
    for key in sorted(items)[:count]:
        item = items[key]
        shown = {
            name: (value.get("S") if "S" in value else f"<{len(value['B'])} bytes>")
            for name, value in sorted(item.items())
            if name in ENCRYPTED_ATTRIBUTES
        }
        print(f"   {key}: {shown}")


def main(items: int = 120) -> int:
    with MotoServer() as server, environment({"AWS_ENDPOINT_URL": ""}):
        # Every client in this process, however made, talks to the embedded AWS, never to AWS.
        os.environ["AWS_ENDPOINT_URL"] = server.endpoint
        print(
            f"embedded AWS (moto) on {server.endpoint}: AccountA={ACCOUNT_A} AccountB={ACCOUNT_B}"
        )
        aws = provision(server.endpoint, items=items)
        print(
            f"provisioned my-table with {items} items, {', '.join(ENCRYPTED_ATTRIBUTES)} KMS-encrypted"
        )
        aws.sessions()
        server.enforce_iam(True)
        print(
            "IAM enforced: every request is checked against its role's policies, and the "
            "reader role's trust policy and ExternalId"
        )

        telemetry = io.StringIO()
        ddb_summary = invoke(aws, load_event("scheduled-event.json"), telemetry)
        _show("scheduled run -> dynamodb://" + aws.destination_table, ddb_summary)
        copy = read_table(aws.account_b().client("dynamodb"), aws.destination_table)
        _preview(copy)
        ddb_problems = differences(aws.expected, copy)

        s3_summary = invoke(aws, load_event("backfill-s3.json"), telemetry)
        _show("backfill -> s3", s3_summary)
        export = read_export(aws.account_b().client("s3"), aws.bucket, s3_summary["location"])
        print(
            f"   {len(export.manifest)} data file(s), manifest itemCount={export.summary['itemCount']}"
        )
        s3_problems = differences(aws.expected, export.items)

        # credstash: items written by credstash itself, checked against credstash.getSecret.
        credstash_truth = seed_credstash(aws)
        cs_summary = invoke(aws, load_event("backfill.json"), telemetry, **credstash_env(aws))
        _show(f"credstash table {CREDSTASH_TABLE} -> dynamodb://{CREDSTASH_COPY}", cs_summary)
        cs_copy = read_table(aws.account_b().client("dynamodb"), CREDSTASH_COPY, key="name")
        for name, item in sorted(cs_copy.items())[:2]:
            print(f"   {name} v{int(item['version']['S'])}: contents={item['contents']['S']!r}")
        cs_items = aws.account_b().client("dynamodb").scan(TableName=CREDSTASH_COPY)["Items"]
        cs_problems = [
            f"credstash {key}: differs from credstash.getSecret"
            for key, value in credstash_truth.items()
            if {"S": value}
            not in [i["contents"] for i in cs_items if (i["name"]["S"], i["version"]["S"]) == key]
        ]

        # DynamoDB Encryption Client: items the AWS library wrote and reads back itself.
        ec_truth = seed_ddb_encryption_client(aws)
        ec_summary = invoke(aws, load_event("backfill.json"), telemetry, **ec_env(aws))
        _show(f"DynamoDB Encryption Client table {EC_TABLE} -> dynamodb://{EC_COPY}", ec_summary)
        ec_copy = {
            ec_key(i): i
            for i in aws.account_b().client("dynamodb").scan(TableName=EC_COPY)["Items"]
        }
        for key in sorted(ec_copy)[:2]:
            print(
                f"   {key}: ssn={ec_copy[key]['ssn']['S']!r} balance={ec_copy[key]['balance']['N']}"
            )
        ec_problems = differences(ec_truth, ec_copy)

        # IAM is enforced: a wrong ExternalId must be refused before anything is read.
        refused = _refused(aws, telemetry, SOURCE_EXTERNAL_ID="not-the-shared-secret")
        print(f"\n== a run with a wrong SOURCE_EXTERNAL_ID\n   {refused or 'was NOT refused'}")

        tables_in_a = aws.account_a().client("dynamodb").list_tables()["TableNames"]
        problems = ddb_problems + s3_problems + cs_problems + ec_problems
        if not refused:
            problems.append("a run with a wrong SOURCE_EXTERNAL_ID was not refused")
        lines = telemetry.getvalue().splitlines()
        metric_lines = sum(1 for line in lines if '"_aws"' in line)
        print(
            f"\n   the function emitted {len(lines) - metric_lines} log lines and "
            f"{metric_lines} EMF metric lines"
        )
        secrets = (
            text_plaintexts(aws)
            + list(credstash_truth.values())
            + [item["ssn"]["S"] for item in ec_truth.values()]
        )
        if leaks := leaked(secrets, telemetry.getvalue()):
            problems.append(f"{leaks} plaintext value(s) appear in the function's logs")
        if set(tables_in_a) != {SOURCE_TABLE, CREDSTASH_TABLE, EC_TABLE}:
            problems.append(f"a copy was written in AccountA: its tables are {tables_in_a}")
        print()
        if problems:
            print(f"CHECK FAILED: {len(problems)} difference(s)")
            for line in problems[:20]:
                print("  ", line)
            return 1
        print(
            f"CHECK PASSED: all {len(aws.expected)} items in both copies equal the source "
            "with every ciphertext replaced by its plaintext; the credstash and DynamoDB "
            "Encryption Client copies equal what those libraries read back; no plaintext in "
            "any log line; with IAM enforced, a wrong ExternalId is refused"
        )
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
