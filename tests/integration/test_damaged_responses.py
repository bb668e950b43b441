"""A damaged response is never read as a result: not a Scan page as the table's end, not a
Decrypt as a missing Plaintext. It is asked for again, then the run fails naming it.

The damage is injected by the fault proxy (a 200 whose body is an HTML page, as a broken proxy
answers): nothing real in moto produces one. Both clients go through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from table_sync.aws import errors
from table_sync.errors import TableSyncError
from table_sync.handler import lambda_handler
from table_sync_dev.local.seed import EmbeddedAws
from table_sync_dev.local.server import MotoServer
from table_sync_dev.local.verify import differences, read_table
from tests.conftest import load_event
from tests.integration.fault_proxy import DAMAGED, FaultProxy

SCAN, DECRYPT = "DynamoDB_20120810.Scan", "TrentService.Decrypt"
CLIENTS = ["lean", "botocore"]


@dataclass
class Damaging:
    """Runs the scheduled event through the fault proxy: every ``every``-th request for
    ``target`` is damaged (1: all of them; else each request at most once)."""

    target: str
    endpoint: str
    monkeypatch: pytest.MonkeyPatch
    context: Any
    proxy: FaultProxy | None = None

    def run(self, every: int) -> dict[str, Any]:
        self.proxy = FaultProxy(
            self.endpoint,
            every=every,
            targets=frozenset({self.target}),
            errors={self.target: DAMAGED},
            max_in_a_row=None if every == 1 else 1,
        )
        self.monkeypatch.setenv("AWS_ENDPOINT_URL", self.proxy.endpoint)
        with self.proxy:
            return dict(lambda_handler(load_event("scheduled-event.json"), self.context))

    @property
    def injected(self) -> int:
        return self.proxy.injected[self.target] if self.proxy else 0


@pytest.fixture(params=[(t, c) for t in (SCAN, DECRYPT) for c in CLIENTS], ids=str)
def damaged(
    request: pytest.FixtureRequest,
    function_env: dict[str, str],
    lambda_context: Any,
    moto_server: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Damaging:
    """For each target (Scan, Decrypt) and client (lean, botocore)."""
    target, client = request.param
    # The backoff between attempts at a damaged answer, made zero: its waits would be most of
    # these tests' time, and what is tested is the attempts, not their spacing.
    monkeypatch.setattr(errors, "DAMAGED_BACKOFF", (0.0, 0.0))
    monkeypatch.setenv("KMS_CLIENT", client)
    monkeypatch.setenv("DYNAMODB_CLIENT", client)
    monkeypatch.setenv("PAGE_SIZE", "5")
    monkeypatch.setenv("ON_DECRYPT_ERROR", "quarantine")
    return Damaging(target, moto_server.endpoint, monkeypatch, lambda_context)


@pytest.mark.items(12)
def test_a_response_damaged_every_time_fails_the_run(aws: EmbeddedAws, damaged: Damaging) -> None:
    """Before, a damaged Scan page on the botocore path ended the scan: 'succeeded', 0 items;
    a damaged Decrypt was a KeyError (botocore) or a JSON traceback (lean)."""
    with pytest.raises(TableSyncError, match="DamagedResponse") as raised:
        damaged.run(1)
    assert damaged.injected >= 4  # asked for again before giving up
    if damaged.target == SCAN:
        assert "not taken as the end of the table" in str(raised.value)
    copy = read_table(aws.account_b().client("dynamodb"), aws.destination_table)
    assert len(copy) < len(aws.expected)  # and nothing said it was complete


@pytest.mark.items(12)
def test_a_response_damaged_once_is_asked_for_again(aws: EmbeddedAws, damaged: Damaging) -> None:
    summary = damaged.run(2)
    assert damaged.injected >= 1
    assert summary["status"] == "succeeded"
    assert summary["items_quarantined"] == 0
    copy = read_table(aws.account_b().client("dynamodb"), aws.destination_table)
    assert differences(aws.expected, copy) == []
