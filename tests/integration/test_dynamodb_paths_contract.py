"""The lean DynamoDB path (DYNAMODB_CLIENT=lean) and botocore's read and write the same items,
retry the same errors and fail the same way.

Items of every attribute type (binary keys, sets, binary nested in maps and lists) are written
with botocore's own client; each path then scans, batch-reads and batch-writes them on the
embedded AWS. The faults moto cannot produce (throttling, an error code of our choosing) come
from the fault proxy, and only those.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from table_sync.aws.clients import CLIENT_CONFIG
from table_sync.aws.dynamodb_lean import LeanDynamoDBClient
from table_sync.changes import canonical_bytes
from table_sync.handler import lambda_handler
from table_sync_dev.local.seed import EmbeddedAws, create_table, key_schema
from table_sync_dev.local.server import MotoServer
from table_sync_dev.local.verify import differences, read_table
from tests.conftest import load_event
from tests.integration.conftest import unique_name
from tests.integration.fault_proxy import FaultProxy

PATHS = ("botocore", "lean")


def _item(n: int) -> dict[str, Any]:
    """An item of every attribute type, binary where DynamoDB allows it."""
    return {
        "id": {"B": b"\x00key-" + bytes([n]) + b"\xff"},
        "name": {"S": f"caf\u00e9 {n}"},
        "count": {"N": str(n * 1000 + 0.5)},
        "blob": {"B": bytes(range(n % 7, 64))},
        "blobs": {"BS": [b"one-" + bytes([n]), b"\x00two"]},
        "numbers": {"NS": ["1", str(n + 2)]},
        "strings": {"SS": ["a", f"b{n}"]},
        "flag": {"BOOL": n % 2 == 0},
        "nothing": {"NULL": True},
        "nested": {
            "M": {
                "inner": {"B": b"\x01\x02" * n},
                "list": {"L": [{"B": b"\x03"}, {"N": "7"}, {"M": {"deep": {"BS": [b"\x04"]}}}]},
            }
        },
    }


def _clients(view: EmbeddedAws, endpoint: str, **config: Any) -> dict[str, Any]:
    """AccountB's DynamoDB client, as each path sends through it."""
    session = view.account_b().session()
    client = session.client(  # type: ignore[call-overload]
        "dynamodb", endpoint_url=endpoint, config=CLIENT_CONFIG.merge(Config(**config))
    )
    return {"botocore": client, "lean": LeanDynamoDBClient(client, session)}


def _scan_all(ddb: Any, table: str) -> list[dict[str, Any]]:
    items = [
        item
        for page in ddb.get_paginator("scan").paginate(TableName=table)
        for item in page["Items"]
    ]
    return sorted(items, key=lambda i: i["id"]["B"])


def _as_sets(items: Iterable[dict[str, Any]]) -> set[bytes]:
    """Items as DynamoDB holds them: sets in no particular order (compared sorted)."""
    return {canonical_bytes(item) for item in items}


def _without_metadata(response: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


@pytest.fixture(scope="module")
def typed_table(world: EmbeddedAws) -> tuple[EmbeddedAws, str, list[dict[str, Any]]]:
    """A table in AccountB keyed by binary ids, with 40 items of every type, written by
    botocore (read it, never change it)."""
    view = world
    ddb = view.account_b().client("dynamodb")
    name = f"typed-{unique_name()}"
    create_table(ddb, name, key_schema(("id", "B")))
    items = [_item(n) for n in range(40)]
    for item in items:
        ddb.put_item(TableName=name, Item=item)
    return view, name, items


def test_both_paths_scan_the_same_pages(
    typed_table: tuple[EmbeddedAws, str, list[dict[str, Any]]],
) -> None:
    view, name, items = typed_table
    pages: dict[str, list[dict[str, Any]]] = {}
    for path, client in _clients(view, view.endpoint).items():
        pages[path] = []
        kwargs: dict[str, Any] = {"TableName": name, "Limit": 7, "ReturnConsumedCapacity": "TOTAL"}
        while True:
            page = client.scan(**kwargs)
            pages[path].append(_without_metadata(page))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]  # binary: sent back as read
    assert pages["lean"] == pages["botocore"]
    scanned = [item for page in pages["lean"] for item in page["Items"]]
    assert _as_sets(scanned) == _as_sets(items)
    assert len(pages["lean"]) == 6  # 40 items, 7 a page: five LastEvaluatedKeys followed


def test_both_paths_batch_read_the_same_items(
    typed_table: tuple[EmbeddedAws, str, list[dict[str, Any]]],
) -> None:
    view, name, items = typed_table
    keys = [{"id": item["id"]} for item in items[:30]]
    found = {}
    for path, client in _clients(view, view.endpoint).items():
        response = client.batch_get_item(
            RequestItems={
                name: {
                    "Keys": [*keys, {"id": {"B": b"no such item"}}],
                    "ProjectionExpression": "#i, #n, #b",
                    "ExpressionAttributeNames": {"#i": "id", "#n": "nested", "#b": "blobs"},
                    "ConsistentRead": True,
                }
            }
        )
        assert not response.get("UnprocessedKeys"), path
        found[path] = sorted(response["Responses"][name], key=lambda i: i["id"]["B"])
    assert found["lean"] == found["botocore"]
    assert _as_sets(found["lean"]) == _as_sets(
        {k: item[k] for k in ("id", "nested", "blobs")} for item in items[:30]
    )


def test_items_written_by_the_lean_path_read_back_as_botocore_wrote_them(
    typed_table: tuple[EmbeddedAws, str, list[dict[str, Any]]],
) -> None:
    view, source, items = typed_table
    ddb = view.account_b().client("dynamodb")
    tables = {}
    for path, client in _clients(view, view.endpoint).items():
        tables[path] = f"{source}-written-{path}"
        create_table(ddb, tables[path], key_schema(("id", "B")))
        requests = [
            [{"PutRequest": {"Item": item}} for item in items[:25]],
            [{"PutRequest": {"Item": item}} for item in items[25:]]
            + [{"DeleteRequest": {"Key": {"id": items[0]["id"]}}}],
        ]
        for request in requests:
            response = client.batch_write_item(RequestItems={tables[path]: request})
            assert not response.get("UnprocessedItems"), path
    written = {path: _scan_all(ddb, table) for path, table in tables.items()}
    assert written["lean"] == written["botocore"]
    assert _as_sets(written["lean"]) == _as_sets(items[1:])


def test_binary_that_is_not_bytes_fails_before_it_is_sent(
    typed_table: tuple[EmbeddedAws, str, list[dict[str, Any]]],
) -> None:
    view, name, _ = typed_table
    with FaultProxy(view.endpoint, every=10**9) as proxy:
        lean = _clients(view, proxy.endpoint)["lean"]
        with pytest.raises(TypeError, match="cannot send a memoryview to DynamoDB"):
            lean.batch_get_item(RequestItems={name: {"Keys": [{"id": {"B": memoryview(b"x")}}]}})
    assert proxy.seen.total() == 0


@pytest.mark.parametrize(
    ("target", "error"),
    [
        ("DynamoDB_20120810.Scan", "ProvisionedThroughputExceededException"),
        ("DynamoDB_20120810.BatchWriteItem", "ThrottlingException"),
        ("DynamoDB_20120810.BatchGetItem", "RequestTimeoutException"),  # transient
        ("DynamoDB_20120810.Scan", "AccessDeniedException"),
        ("DynamoDB_20120810.BatchWriteItem", "ValidationException"),
    ],
)
def test_both_paths_retry_and_fail_alike(
    typed_table: tuple[EmbeddedAws, str, list[dict[str, Any]]],
    no_retry_delay: None,
    target: str,
    error: str,
) -> None:
    """Every request answered with ``error``: retryable ones are sent the same number of times
    (botocore's attempts for the config), the others once; both raise the same error."""
    view, name, items = typed_table
    calls = {
        "DynamoDB_20120810.Scan": lambda c: c.scan(TableName=name),
        "DynamoDB_20120810.BatchWriteItem": lambda c: c.batch_write_item(
            RequestItems={name: [{"PutRequest": {"Item": items[1]}}]}
        ),
        "DynamoDB_20120810.BatchGetItem": lambda c: c.batch_get_item(
            RequestItems={name: {"Keys": [{"id": items[1]["id"]}]}}
        ),
    }
    outcomes = {}
    for path in PATHS:
        with FaultProxy(
            view.endpoint, every=1, targets=frozenset({target}), errors={target: error}
        ) as proxy:
            client = _clients(
                view, proxy.endpoint, retries={"mode": "standard", "max_attempts": 3}
            )[path]
            with pytest.raises(ClientError) as failed:
                calls[target](client)
        outcomes[path] = (
            failed.value.response["Error"]["Code"],
            str(failed.value),
            proxy.seen[target],
        )
    assert outcomes["lean"] == outcomes["botocore"]
    code, _, sent = outcomes["lean"]
    assert code == error
    assert sent == (1 if error in ("AccessDeniedException", "ValidationException") else 4)


@pytest.mark.items(40)
def test_both_paths_make_the_same_copy_through_throttling(
    aws: EmbeddedAws,
    moto_server: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: Any,
    no_retry_delay: None,
) -> None:
    """A whole run with each path, every third Scan, BatchWriteItem and Decrypt throttled (a
    fault moto cannot produce), on the embedded AWS with IAM enforced."""
    copies = {}
    for path in PATHS:
        view = aws.isolated(f"{aws.name}-{path}")
        for name, value in view.lambda_env(DYNAMODB_CLIENT=path, PAGE_SIZE="9").items():
            monkeypatch.setenv(name, value)
        with (
            FaultProxy(moto_server.endpoint, every=3, keep_host=True, max_in_a_row=3) as proxy,
            moto_server.iam_enforced(),
        ):
            monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
            summary = lambda_handler(load_event("scheduled-event.json"), lambda_context)
        assert summary["status"] == "succeeded", path
        assert summary["pages"] == 5, path
        assert proxy.injected["DynamoDB_20120810.Scan"] >= 1, path
        assert proxy.injected["DynamoDB_20120810.BatchWriteItem"] >= 1, path
        copies[path] = read_table(view.account_b().client("dynamodb"), view.destination_table)
    assert copies["lean"] == copies["botocore"]
    assert differences(aws.expected, copies["lean"]) == []


def test_a_client_without_retry_settings_is_retried_as_botocore_retries_it(
    typed_table: tuple[EmbeddedAws, str, list[dict[str, Any]]], no_retry_delay: None
) -> None:
    """A client made with botocore's defaults (standard mode, DynamoDB's own attempts)."""
    view, name, _ = typed_table
    sent = {}
    for path in PATHS:
        with FaultProxy(view.endpoint, every=1) as proxy:
            session = view.account_b().session()
            client = session.client("dynamodb", endpoint_url=proxy.endpoint)
            lean = LeanDynamoDBClient(client, session)
            with pytest.raises(ClientError, match="ProvisionedThroughputExceeded"):
                (lean if path == "lean" else client).scan(TableName=name)
        sent[path] = proxy.seen["DynamoDB_20120810.Scan"]
    assert sent["lean"] == sent["botocore"] > 1
