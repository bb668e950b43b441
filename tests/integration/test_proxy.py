"""A run behind an egress proxy (HTTP_PROXY / HTTPS_PROXY, NO_PROXY), with the endpoint
reachable through the proxy alone (its host name resolves only there). Before, botocore's calls
(AssumeRole, the state) went through the proxy but the lean Scan, Decrypt and BatchWriteItem
went direct, and the default settings failed: `scan of source table ... EndpointConnectionError`
(issue 27). Now a call a proxy carries goes through botocore's transport."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from table_sync.errors import TableSyncError
from table_sync.handler import lambda_handler
from table_sync_dev.local.seed import EmbeddedAws
from table_sync_dev.local.server import MotoServer
from table_sync_dev.local.verify import differences, read_table
from tests.conftest import load_event
from tests.integration.forward_proxy import ForwardProxy

HIDDEN = "aws.internal"  # a name only the proxy resolves


@pytest.fixture
def behind_a_proxy(
    aws: EmbeddedAws, function_env: Any, moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> Any:
    port = urlsplit(moto_server.endpoint).port
    with ForwardProxy({HIDDEN: "127.0.0.1"}) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{HIDDEN}:{port}")
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        for name in ("NO_PROXY", "no_proxy", "http_proxy"):
            monkeypatch.delenv(name, raising=False)
        yield proxy


@pytest.mark.items(12)
def test_the_default_settings_sync_through_the_proxy(
    aws: EmbeddedAws, behind_a_proxy: ForwardProxy, lambda_context: Any
) -> None:
    summary = lambda_handler(load_event("scheduled-event.json"), lambda_context)
    assert summary["status"] == "succeeded"
    assert summary["items_written"] == 12
    carried = behind_a_proxy.carried
    for call in ("TrentService.Decrypt", "DynamoDB_20120810.Scan"):
        assert carried[call] > 0, carried
    assert carried["DynamoDB_20120810.BatchWriteItem"] > 0, carried
    copy = read_table(aws.account_b().client("dynamodb"), aws.destination_table)
    assert differences(aws.expected, copy) == []


@pytest.mark.items(2)
def test_no_proxy_sends_the_calls_direct(
    behind_a_proxy: ForwardProxy, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NO_PROXY exempts the endpoint: nothing is carried, and the unreachable endpoint is one
    error naming where nothing answered."""
    monkeypatch.setenv("NO_PROXY", HIDDEN)
    with pytest.raises(TableSyncError, match=f"nothing answers at http://{HIDDEN}"):
        lambda_handler(load_event("scheduled-event.json"), lambda_context)
    assert sum(behind_a_proxy.carried.values()) == 0
