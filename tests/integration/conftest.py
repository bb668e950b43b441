"""The embedded two-account AWS: one moto server for the session, fresh accounts per test."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from table_sync.local.accounts import REGION, Account
from table_sync.local.seed import SOURCE_TABLE, EmbeddedAws, provision
from table_sync.local.server import MotoServer
from table_sync.observability import logger, metrics


@pytest.fixture(autouse=True)
def _fresh_metrics() -> Iterator[None]:
    """Powertools Metrics is process-global; a test that calls handle_event directly (without
    the flushing decorator) must not leave its metrics to the next test."""
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    log = Path(tmp_path_factory.mktemp("moto")) / "moto.log"
    with MotoServer(log_file=log) as server:
        yield server


@pytest.fixture
def aws(
    moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> EmbeddedAws:
    """AccountA and AccountB provisioned as the runbook does, with 40 encrypted items
    (``@pytest.mark.items(n)`` for another number)."""
    marker = request.node.get_closest_marker("items")
    moto_server.reset()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
    return provision(moto_server.endpoint, items=marker.args[0] if marker else 40)


@pytest.fixture
def function_env(aws: EmbeddedAws, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The Lambda's environment: settings plus its execution role's credentials in AccountB."""
    env = aws.lambda_env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def function_session(aws: EmbeddedAws) -> boto3.Session:
    """A boto3 session with the function role's credentials (the caller's own credentials)."""
    creds = aws.function_credentials()
    return boto3.Session(
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        aws_session_token=creds.session_token,
        region_name=REGION,
    )


@pytest.fixture
def account_b(aws: EmbeddedAws) -> Account:
    return aws.account_b()


@dataclass
class Telemetry:
    """Everything the function emitted: Powertools log lines and EMF metric lines."""

    logs: io.StringIO
    capsys: pytest.CaptureFixture[str]

    def text(self) -> str:
        out, err = self.capsys.readouterr()
        return self.logs.getvalue() + out + err


@pytest.fixture
def telemetry(capsys: pytest.CaptureFixture[str]) -> Iterator[Telemetry]:
    stream = io.StringIO()
    handler = logger.registered_handler
    previous: Any = handler.setStream(stream)
    try:
        yield Telemetry(stream, capsys)
    finally:
        handler.setStream(previous)


def set_source_attribute(aws: EmbeddedAws, pk: str, name: str, value: dict[str, Any]) -> None:
    """Change one attribute of one item of my-table in AccountA (as the table's writer would)."""
    aws.account_a().client("dynamodb").update_item(
        TableName=SOURCE_TABLE,
        Key={"pk": {"S": pk}},
        UpdateExpression="SET #a = :v",
        ExpressionAttributeNames={"#a": name},
        ExpressionAttributeValues={":v": value},
    )
