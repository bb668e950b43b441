"""`verify` matches items by their typed key tuples, partition and sort key, for both
destinations: never by the partition key alone, nor by the text of a described key."""

from __future__ import annotations

from dataclasses import replace

import boto3
import pytest

from table_sync.models import Invocation, Settings
from table_sync.runs import run_step
from table_sync.verify import verify_copy
from table_sync_dev.local.seed import EmbeddedAws, create_table, key_schema, put_items
from tests.integration.conftest import unique_name

SCHEMA = key_schema(("pk", "S"), ("sk", "S"))
# Two distinct keys whose descriptions ({pk=S:"...", sk=S:"..."}) are the same text.
LOOKALIKES = [('a", sk=S:"b', "c"), ("a", 'b", sk=S:"c')]


@pytest.fixture
def sorted_table(aws: EmbeddedAws) -> tuple[EmbeddedAws, int]:
    """A source table with a sort key: three items under each of four partition keys, and the
    two look-alike keys; each item's ssn a KMS ciphertext. Its own copy table, same schema."""
    name = unique_name()
    view = replace(aws, source_table=f"sorted-{name}", destination_table=f"sorted-copy-{name}")
    kms = aws.account_a().client("kms")
    keys = [(f"user#{u}", f"order#{o}") for u in range(4) for o in range(3)] + LOOKALIKES
    items = [
        {
            "pk": {"S": pk},
            "sk": {"S": sk},
            "ssn": {
                "B": kms.encrypt(KeyId=aws.key_arn, Plaintext=f"{n:03d}".encode())["CiphertextBlob"]
            },
        }
        for n, (pk, sk) in enumerate(keys)
    ]
    create_table(aws.account_a().client("dynamodb"), view.source_table, SCHEMA)
    put_items(aws.account_a().client("dynamodb"), view.source_table, items)
    create_table(aws.account_b().client("dynamodb"), view.destination_table, SCHEMA)
    return view, len(items)


@pytest.mark.parametrize("destination", ["dynamodb", "s3"])
def test_verify_matches_a_correct_copy_of_a_table_with_a_sort_key(
    sorted_table: tuple[EmbeddedAws, int], function_session: boto3.Session, destination: str
) -> None:
    """Before, an s3:// copy was keyed by its first key attribute: a correct export of a table
    with a sort key was reported as a mismatch; and the look-alike keys collapsed into one on
    both destinations, so one of them was never compared."""
    aws, count = sorted_table
    uri = (
        f"dynamodb://{aws.destination_table}"
        if destination == "dynamodb"
        else (f"s3://{aws.bucket}/sorted")
    )
    settings = Settings.from_env(
        aws.settings_env(DESTINATION=uri, ENCRYPTED_ATTRIBUTES="ssn", SOURCE_KEY_ATTRIBUTES="pk,sk")
    )
    summary = run_step(
        settings,
        Invocation(trigger="backfill"),
        base_session=function_session,
        role_session_name="verify-keys",
    )
    assert summary.items_written == count

    comparison, _ = verify_copy(
        settings, base_session=function_session, role_session_name="verify-keys"
    )
    assert comparison.matches, comparison
    assert comparison.source_items == comparison.destination_items == count


def test_verify_finds_a_lookalike_key_missing_from_the_copy(
    sorted_table: tuple[EmbeddedAws, int], function_session: boto3.Session
) -> None:
    aws, count = sorted_table
    settings = Settings.from_env(
        aws.settings_env(
            DESTINATION=f"dynamodb://{aws.destination_table}",
            ENCRYPTED_ATTRIBUTES="ssn",
            SOURCE_KEY_ATTRIBUTES="pk,sk",
        )
    )
    run_step(
        settings,
        Invocation(trigger="backfill"),
        base_session=function_session,
        role_session_name="verify-keys",
    )
    pk, sk = LOOKALIKES[1]
    aws.account_b().client("dynamodb").delete_item(
        TableName=aws.destination_table, Key={"pk": {"S": pk}, "sk": {"S": sk}}
    )
    comparison, _ = verify_copy(
        settings, base_session=function_session, role_session_name="verify-keys"
    )
    assert not comparison.matches
    assert len(comparison.missing) == 1
    assert (comparison.source_items, comparison.destination_items) == (count, count - 1)
