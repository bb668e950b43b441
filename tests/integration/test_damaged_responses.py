"""A damaged response is never read as a result: not a Scan page as the table's end, not a
Decrypt as a missing Plaintext. It is asked for again, then the run fails naming it.

The damage is injected by the fault proxy (a 200 whose body is an HTML page, as a broken proxy
answers): nothing real in moto produces one. Both clients go through it.
"""

from __future__ import annotations

import pytest

from table_sync.errors import TableSyncError
from table_sync.handler import lambda_handler
from table_sync_dev.local.seed import EmbeddedAws
from table_sync_dev.local.server import MotoServer
from table_sync_dev.local.verify import differences, read_table
from tests.conftest import load_event
from tests.integration.fault_proxy import DAMAGED, FaultProxy

SCAN, DECRYPT = "DynamoDB_20120810.Scan", "TrentService.Decrypt"
CLIENTS = ["lean", "botocore"]


def _proxied(
    monkeypatch: pytest.MonkeyPatch, server: MotoServer, target: str, every: int, client: str
) -> FaultProxy:
    proxy = FaultProxy(
        server.endpoint,
        every=every,
        targets=frozenset({target}),
        errors={target: DAMAGED},
        max_in_a_row=None if every == 1 else 1,  # once damaged, the same request then passes
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
    monkeypatch.setenv("KMS_CLIENT", client)
    monkeypatch.setenv("DYNAMODB_CLIENT", client)
    monkeypatch.setenv("PAGE_SIZE", "5")
    monkeypatch.setenv("ON_DECRYPT_ERROR", "quarantine")
    return proxy


@pytest.mark.items(12)
@pytest.mark.parametrize("target", [SCAN, DECRYPT])
@pytest.mark.parametrize("client", CLIENTS)
def test_a_response_damaged_every_time_fails_the_run(
    aws: EmbeddedAws,
    function_env: dict[str, str],
    lambda_context,
    moto_server: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    target: str,
    client: str,
) -> None:
    """Before, a damaged Scan page on the botocore path ended the scan: 'succeeded', 0 items;
    a damaged Decrypt was a KeyError (botocore) or a JSON traceback (lean)."""
    with (
        _proxied(monkeypatch, moto_server, target, 1, client) as proxy,
        pytest.raises(TableSyncError, match="DamagedResponse") as raised,
    ):
        lambda_handler(load_event("scheduled-event.json"), lambda_context)
    assert proxy.injected[target] >= 4  # asked for again before giving up
    if target == SCAN:
        assert "not taken as the end of the table" in str(raised.value)
    copy = read_table(aws.account_b().client("dynamodb"), aws.destination_table)
    assert len(copy) < len(aws.expected)  # and nothing said it was complete


@pytest.mark.items(12)
@pytest.mark.parametrize("target", [SCAN, DECRYPT])
@pytest.mark.parametrize("client", CLIENTS)
def test_a_response_damaged_once_is_asked_for_again(
    aws: EmbeddedAws,
    function_env: dict[str, str],
    lambda_context,
    moto_server: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    target: str,
    client: str,
) -> None:
    with _proxied(monkeypatch, moto_server, target, 2, client) as proxy:
        summary = lambda_handler(load_event("scheduled-event.json"), lambda_context)
    assert proxy.injected[target] >= 1
    assert summary["status"] == "succeeded"
    assert summary["items_quarantined"] == 0
    copy = read_table(aws.account_b().client("dynamodb"), aws.destination_table)
    assert differences(aws.expected, copy) == []
