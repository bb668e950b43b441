"""Fewer KMS calls: each distinct ciphertext is decrypted once; throttling never drops an item."""

from __future__ import annotations

import base64

import pytest

from table_sync.errors import KeyNotProven
from table_sync.handler import lambda_handler
from table_sync_dev.local.seed import EmbeddedAws
from table_sync_dev.local.server import MotoServer
from table_sync_dev.local.verify import differences, read_table
from tests.conftest import load_event
from tests.integration.fault_proxy import FaultProxy


def _distinct_ciphertexts(aws: EmbeddedAws) -> tuple[int, int]:
    items = read_table(aws.account_a().client("dynamodb"), aws.source_table)
    blobs = [
        value["B"] if "B" in value else base64.b64decode(value["S"])
        for item in items.values()
        for name, value in item.items()
        if name in ("ssn", "card", "api_secret")
    ]
    return len(set(blobs)), len(blobs)


def _share_ciphertexts(aws: EmbeddedAws) -> None:
    """Many items holding the same ciphertext, as a default or a copied value would."""
    ddb = aws.account_a().client("dynamodb")
    shared = ddb.get_item(TableName=aws.source_table, Key={"pk": {"S": "customer#00000"}})["Item"]
    for n in range(1, 30):
        pk = f"customer#{n:05d}"
        ddb.update_item(
            TableName=aws.source_table,
            Key={"pk": {"S": pk}},
            UpdateExpression="SET ssn = :s",
            ExpressionAttributeValues={":s": shared["ssn"]},
        )
        aws.expected[pk]["ssn"] = aws.expected["customer#00000"]["ssn"]


def test_kms_requests_equal_the_number_of_distinct_ciphertexts(
    aws: EmbeddedAws, function_env, lambda_context, moto_server: MotoServer, monkeypatch
) -> None:
    _share_ciphertexts(aws)
    monkeypatch.setenv("DECRYPT_CONCURRENCY", "16")  # duplicates are in flight at once
    distinct, total = _distinct_ciphertexts(aws)
    assert distinct < total - 25

    with moto_server.recording() as calls:
        summary = lambda_handler(load_event("scheduled-event.json"), lambda_context)

    decrypts = sum(1 for c in calls if c.name == "kms:Decrypt")
    assert summary["kms_requests"] == decrypts == distinct
    assert summary["kms_cache_hits"] == total - distinct
    assert summary["attributes_decrypted"] == total
    copy = read_table(aws.account_b().client("dynamodb"), aws.destination_table)
    assert differences(aws.expected, copy) == []


@pytest.mark.items(15)
@pytest.mark.parametrize("concurrency", ["1", "16"])
def test_throttling_is_retried_and_every_item_arrives(
    aws: EmbeddedAws,
    function_env,
    lambda_context,
    moto_server: MotoServer,
    monkeypatch,
    concurrency,
    no_retry_delay,
) -> None:
    """Fault injection (moto has no throttling): a proxy throttles every 4th call; botocore
    retries them as it would AWS's, without its backoff waits (no_retry_delay)."""
    monkeypatch.setenv("PAGE_SIZE", "3")  # 5 pages: 5 Scans and 5 BatchWriteItems
    monkeypatch.setenv("DECRYPT_CONCURRENCY", concurrency)
    with FaultProxy(moto_server.endpoint, every=4) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        summary = lambda_handler(load_event("scheduled-event.json"), lambda_context)

    assert proxy.injected["TrentService.Decrypt"] >= 5
    assert proxy.injected["DynamoDB_20120810.Scan"] >= 1
    assert proxy.injected["DynamoDB_20120810.BatchWriteItem"] >= 1
    assert summary["items_written"] == 15
    assert summary["kms_requests"] == summary["attributes_decrypted"]  # retries are not requests
    copy = read_table(aws.account_b().client("dynamodb"), aws.destination_table)
    assert differences(aws.expected, copy) == []


@pytest.mark.items(4)
def test_throttling_that_outlasts_every_retry_fails_the_run(
    aws: EmbeddedAws,
    function_env,
    lambda_context,
    moto_server: MotoServer,
    monkeypatch,
    no_retry_delay,
) -> None:
    """Never quarantined, never dropped: the run fails and says so."""
    from table_sync.errors import DecryptError

    monkeypatch.setenv("KMS_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("DECRYPT_CONCURRENCY", "1")
    with FaultProxy(
        moto_server.endpoint, every=1, targets=frozenset({"TrentService.Decrypt"})
    ) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        with pytest.raises(DecryptError, match="ThrottlingException"):
            lambda_handler(load_event("scheduled-event.json"), lambda_context)
    assert read_table(aws.account_b().client("dynamodb"), aws.quarantine_table, key="item") == {}


@pytest.mark.items(4)
@pytest.mark.parametrize(
    ("code", "state"),
    [
        ("DisabledException", "is disabled"),
        ("KMSInvalidStateException", "cannot decrypt in its state (pending deletion"),
    ],
)
def test_an_unusable_key_fails_the_run_at_once_naming_its_state(
    aws: EmbeddedAws,
    function_env,
    lambda_context,
    moto_server: MotoServer,
    monkeypatch,
    code: str,
    state: str,
) -> None:
    """Fault injection: moto does not enforce disabled keys, so the proxy answers every Decrypt
    as KMS answers for a disabled key or one pending deletion. Not the items' fault: nothing is
    quarantined, nothing written, and the error names the key and its state."""
    from table_sync.errors import DecryptError

    with FaultProxy(
        moto_server.endpoint,
        every=1,
        targets=frozenset({"TrentService.Decrypt"}),
        errors={"TrentService.Decrypt": code},
    ) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        with pytest.raises(DecryptError) as raised:
            lambda_handler(load_event("scheduled-event.json"), lambda_context)
    assert raised.value.kind == code
    assert f"SOURCE_KMS_KEY_ARN {aws.key_arn} {state}" in str(raised.value)
    assert proxy.injected["TrentService.Decrypt"] <= 16  # one page's first Decrypts, no retries
    assert read_table(aws.account_b().client("dynamodb"), aws.quarantine_table, key="item") == {}
    assert read_table(aws.account_b().client("dynamodb"), aws.destination_table) == {}


@pytest.mark.items(10)
@pytest.mark.parametrize("dry_run", [False, True])
def test_a_run_with_nothing_changed_still_proves_its_key(
    aws: EmbeddedAws,
    function_env: dict[str, str],
    lambda_context,
    monkeypatch: pytest.MonkeyPatch,
    dry_run: bool,
) -> None:
    """Before, with no item changed, a run and a dry run under a wrong SOURCE_KMS_KEY_ARN both
    said succeeded with 0 KMS requests; the first changed item failed some later run."""
    assert lambda_handler(load_event("scheduled-event.json"), lambda_context)["items_written"]
    if dry_run:
        monkeypatch.setenv("DRY_RUN", "true")

    unchanged = lambda_handler(load_event("scheduled-event.json"), lambda_context)
    assert (unchanged["items_unchanged"], unchanged["items_written"]) == (10, 0)
    assert unchanged["kms_requests"] == 1  # the proof: one Decrypt, not from the cache

    other_key = aws.account_a().client("kms").create_key()["KeyMetadata"]["Arn"]
    monkeypatch.setenv("SOURCE_KMS_KEY_ARN", other_key)
    with pytest.raises(KeyNotProven, match=f"SOURCE_KMS_KEY_ARN {other_key} cannot decrypt"):
        lambda_handler(load_event("scheduled-event.json"), lambda_context)
