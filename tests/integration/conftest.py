"""The embedded two-account AWS: one moto server and one provisioning for the whole session;
each test gets its own tables and bucket, named after it (``EmbeddedAws.isolated``), so tests
never see each other's data and nothing is provisioned twice."""

from __future__ import annotations

import base64
import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from table_sync.handler import lambda_handler
from table_sync.observability import logger, metrics
from table_sync_dev.local.accounts import Account
from table_sync_dev.local.container import sam_build
from table_sync_dev.local.context import LocalLambdaContext
from table_sync_dev.local.paths import SAM
from table_sync_dev.local.seed import EmbeddedAws, provision, put_items, write_bulk_items
from table_sync_dev.local.server import MotoServer

# The session's source table holds this many items; a test takes the first n of them
# (``@pytest.mark.items(n)``) in its own source table.
SESSION_ITEMS = 40
_names = itertools.count(1)


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


@pytest.fixture(scope="session")
def world(moto_server: MotoServer) -> EmbeddedAws:
    """AccountA and AccountB provisioned once, as the runbook does, with 40 encrypted items.
    (Its clients name the endpoint themselves: the environment keeps pointing nowhere outside
    the tests that ask for ``aws``.)"""
    return provision(moto_server.endpoint, items=SESSION_ITEMS)


def unique_name() -> str:
    return f"t{next(_names):04d}"


@pytest.fixture
def aws(
    world: EmbeddedAws,
    moto_server: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> EmbeddedAws:
    """This test's own world: its own source table with the first 40 items
    (``@pytest.mark.items(n)`` for fewer) and its own copy, quarantine and state tables and
    bucket, in the session's accounts."""
    marker = request.node.get_closest_marker("items")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
    return world.isolated(unique_name(), items=marker.args[0] if marker else SESSION_ITEMS)


@pytest.fixture(scope="session")
def bulk_world(world: EmbeddedAws) -> EmbeddedAws:
    """A larger source table, filled once for the session (read it, never change it)."""
    bulk = world.isolated("bulk", items=0)
    write_bulk_items(bulk, BULK_ITEMS)
    return bulk


BULK_ITEMS = 600


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
    return aws.function_credentials().session()


@pytest.fixture
def account_b(aws: EmbeddedAws) -> Account:
    return aws.account_b()


@pytest.fixture
def no_retry_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's standard retry mode still retries, but without waiting: for tests that inject
    throttling or an unreachable endpoint, where the waits would be the test's whole run time."""
    from botocore.retries import standard

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0.0)


@pytest.fixture
def one_by_one(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the Decrypts the lean client sends one at a time (``LeanKmsClient.decrypt``, the
    fallback for what a page's prefetch did not name), each still sent to moto: a spy, not a
    stub. A format whose ``ciphertexts`` names every Decrypt its decoder makes sends none."""
    from table_sync.aws.kms_lean import LeanKmsClient

    calls: list[int] = []
    decrypt = LeanKmsClient.decrypt

    def counted(self: LeanKmsClient, **kwargs: Any) -> dict[str, Any]:
        calls.append(1)
        return decrypt(self, **kwargs)

    monkeypatch.setattr(LeanKmsClient, "decrypt", counted)
    return calls


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


def source_item(aws: EmbeddedAws, pk: str) -> dict[str, Any]:
    """One item of this test's source table, as stored (encrypted)."""
    response = (
        aws.account_a()
        .client("dynamodb")
        .get_item(TableName=aws.source_table, Key={"pk": {"S": pk}})
    )
    return dict(response["Item"])


def set_source_attribute(aws: EmbeddedAws, pk: str, name: str, value: dict[str, Any]) -> None:
    """Change one attribute of one item of the test's source table (as its writer would)."""
    aws.account_a().client("dynamodb").update_item(
        TableName=aws.source_table,
        Key={"pk": {"S": pk}},
        UpdateExpression="SET #a = :v",
        ExpressionAttributeNames={"#a": name},
        ExpressionAttributeValues={":v": value},
    )


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run a `table-sync` command in this process (typer's CliRunner), with ``env`` added to the
    environment for the call. An exception table-sync did not turn into an exit status
    propagates, so a traceback fails the test."""
    from typer.testing import CliRunner

    from table_sync_dev.cli import app

    def invoke(env: dict[str, str], *args: str) -> CliResult:
        with monkeypatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            result = CliRunner().invoke(app, list(args), catch_exceptions=False)
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return invoke


@dataclass
class BudgetContext(LocalLambdaContext):
    """A Lambda context whose remaining time runs short after ``pages`` pages."""

    pages: int = 2

    def get_remaining_time_in_millis(self) -> int:
        self.pages -= 1
        return 900_000 if self.pages > 0 else 1_000


def drive(event: dict[str, Any], pages: int = 2, limit: int = 200) -> tuple[dict[str, Any], int]:
    """Invoke until the step is no longer 'continue', as the state machine does."""
    for invocations in range(1, limit + 1):
        summary = lambda_handler(event, BudgetContext(pages=pages))
        if summary["status"] != "continue":
            return summary, invocations
    raise AssertionError(f"still continuing after {limit} invocations")


def drive_run(run_id: str, segments: int, pages: int = 2) -> tuple[dict[str, Any], int]:
    """A whole run with a tiny time budget: one segment driven to the end, or each of
    ``segments`` driven to done and then the finalize, as the state machine does."""
    if segments == 1:
        return drive({"trigger": "backfill", "run_id": run_id}, pages=pages)
    invocations = 0
    for segment in range(segments):
        event = {"trigger": "segment", "run_id": run_id, "segment": segment}
        step, count = drive({**event, "total_segments": segments}, pages=pages)
        assert step["status"] == "segment-done", step
        invocations += count
    finalize = {"trigger": "finalize", "run_id": run_id, "total_segments": segments}
    return lambda_handler(finalize, LocalLambdaContext()), invocations + 1


def change_source(
    aws: EmbeddedAws, *, updates: int, inserts: int, deletes: int, tag: str = "new"
) -> set[str]:
    """Update the first ``updates`` items, insert ``inserts`` (``<tag>#<n>``) and delete the
    last ``deletes`` in the source, each changed or new item with a ciphertext of its own
    (written with the AWS SDK as the source's application would); returns those ciphertexts,
    base64."""
    kms = aws.account_a().client("kms")
    ddb = aws.account_a().client("dynamodb")
    keys = sorted(aws.expected)
    changed = [(k, "update") for k in keys[:updates]]
    changed += [(f"{tag}#{n:04d}", "insert") for n in range(inserts)]
    ciphertexts, items = set(), []
    for n, (key, _) in enumerate(changed):
        plaintext = f"900-{n:02d}-{key}-{tag}"
        blob = kms.encrypt(KeyId=aws.key_arn, Plaintext=plaintext.encode())["CiphertextBlob"]
        ciphertexts.add(base64.b64encode(blob).decode())
        item = {"pk": {"S": key}, "n": {"N": str(n)}, "note": {"S": f"changed {n}"}}
        items.append({**item, "ssn": {"B": blob}})
        aws.expected[key] = {**item, "ssn": {"S": plaintext}}
    put_items(ddb, aws.source_table, items)
    for key in keys[len(keys) - deletes :]:
        ddb.delete_item(TableName=aws.source_table, Key={"pk": {"S": key}})
        del aws.expected[key]
    return ciphertexts


@pytest.fixture(scope="session")
def x86_64_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`sam build` of template.yaml for x86_64 (this machine's architecture; the template
    deploys arm64, whose compiled wheels cannot load here), once per test run: the build
    directory, holding template.yaml and SyncFunction/."""
    if not SAM.exists():
        pytest.skip("aws-sam-cli is not installed: run `make test`, which installs it")
    build = tmp_path_factory.mktemp("sam-build")
    sam_build(build, "x86_64")
    return build
