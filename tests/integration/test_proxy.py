"""A run behind an egress proxy (HTTP_PROXY / HTTPS_PROXY, NO_PROXY), with the endpoint
reachable through the proxy alone (its host name resolves only there). Before, botocore's calls
(AssumeRole, the state) went through the proxy but the lean Scan, Decrypt and BatchWriteItem
went direct, and the default settings failed: `scan of source table ... EndpointConnectionError`
(issue 27). Now the lean transport (awscrt) goes through the proxy itself, as botocore's does:
forwarded for an http:// endpoint, tunnelled (CONNECT) for an https:// one, with basic auth."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from table_sync.errors import TableSyncError
from table_sync.handler import lambda_handler
from table_sync_dev.local.seed import EmbeddedAws
from table_sync_dev.local.server import MotoServer
from table_sync_dev.local.verify import differences, read_table
from tests.conftest import load_event
from tests.integration.fault_proxy import FaultProxy
from tests.integration.forward_proxy import ForwardProxy
from tests.integration.test_kms_lean_tls import _ca, _server_context

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


@pytest.mark.items(6)
def test_an_https_endpoint_through_a_proxy_that_needs_basic_auth(
    aws: EmbeddedAws,
    function_env: Any,
    moto_server: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    lambda_context: Any,
    no_retry_delay: None,
) -> None:
    """KMS and DynamoDB at https://aws.internal (a TLS front for moto, its certificate signed by
    a test CA, AWS_CA_BUNDLE), reached only through an authenticating CONNECT proxy: both
    transports tunnel, authenticate and verify the certificate; with the wrong password both
    are refused alike, and nothing is written."""
    ca, ca_key, ca_cert = _ca(tmp_path, "proxy")
    tls = _server_context(tmp_path, ca_key, ca_cert, names=(HIDDEN,))
    with (
        FaultProxy(moto_server.endpoint, targets=frozenset(), tls=tls) as front,
        ForwardProxy({HIDDEN: "127.0.0.1"}, auth=("egress", "p@ss word")) as proxy,
    ):
        endpoint = f"https://{HIDDEN}:{urlsplit(front.endpoint).port}"
        monkeypatch.setenv("AWS_CA_BUNDLE", str(ca))
        for name in ("AWS_ENDPOINT_URL_KMS", "AWS_ENDPOINT_URL_DYNAMODB"):
            monkeypatch.setenv(name, endpoint)
        for name in ("NO_PROXY", "no_proxy", "https_proxy", "HTTP_PROXY", "http_proxy"):
            monkeypatch.delenv(name, raising=False)
        errors = {}
        for path in ("botocore", "lean"):
            view = aws.isolated(f"{aws.name}-tunnel-{path}")
            for name, value in view.lambda_env(KMS_CLIENT=path, DYNAMODB_CLIENT=path).items():
                monkeypatch.setenv(name, value)
            monkeypatch.setenv("HTTPS_PROXY", proxy.url_with("egress", "p%40ss%20word"))
            tunnels = proxy.tunnels.total()
            summary = lambda_handler(load_event("scheduled-event.json"), lambda_context)
            assert summary["status"] == "succeeded", path
            assert proxy.tunnels.total() > tunnels, path
            copy = read_table(view.account_b().client("dynamodb"), view.destination_table)
            assert differences(view.expected, copy) == [], path
            wrong = aws.isolated(f"{aws.name}-refused-{path}")
            for name, value in wrong.lambda_env(KMS_CLIENT=path, DYNAMODB_CLIENT=path).items():
                monkeypatch.setenv(name, value)
            monkeypatch.setenv("HTTPS_PROXY", proxy.url_with("egress", "wrong"))
            with pytest.raises(TableSyncError) as refused:
                lambda_handler(load_event("scheduled-event.json"), lambda_context)
            errors[path] = str(refused.value)
            assert read_table(wrong.account_b().client("dynamodb"), wrong.destination_table) == {}
    assert proxy.refused["407"] > 0
    assert {error.rsplit(": ", 1)[1] for error in errors.values()} == {"ProxyConnectionError"}
