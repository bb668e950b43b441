"""Both transports, the lean one (awscrt) and botocore's, over the same transport faults: the
same copy, the same retries, and the same one-line error once the faults outlast the retries
(issue 27).

Each run syncs the same table through the fault proxy in front of the embedded AWS, with IAM
enforced. The proxy injects one fault (fault_proxy.FAULTS) into every 3rd Decrypt, Scan, BatchGetItem
and BatchWriteItem (the CRC32 mismatch into DynamoDB's calls only: KMS sends no CRC32), never more
than twice in a row for one request, so every call succeeds in the end. A reset, a close, a
body cut short, a response that never comes and a damaged checksum are faults moto cannot
produce: injected, and only they. Retries are counted where botocore's standard retry policy
decides them (``RetryPolicy.should_retry``), which both transports use.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.config import Config
from botocore.retries import standard

from table_sync.aws import clients
from table_sync.errors import TableSyncError
from table_sync.handler import lambda_handler
from table_sync_dev.local.context import LocalLambdaContext
from table_sync_dev.local.seed import EmbeddedAws
from table_sync_dev.local.server import MotoServer
from table_sync_dev.local.verify import differences, read_table
from tests.conftest import load_event
from tests.integration.fault_proxy import FAULTS, SILENT, FaultProxy

PATHS = ("botocore", "lean")
DECRYPT, SCAN, WRITE, READ = (
    "TrentService.Decrypt",
    "DynamoDB_20120810.Scan",
    "DynamoDB_20120810.BatchWriteItem",
    "DynamoDB_20120810.BatchGetItem",  # the copy's digests, read before each page's writes
)


@pytest.fixture
def retries(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Retries botocore's standard policy granted, by operation: a spy, each still made."""
    counted: Counter[str] = Counter()
    should_retry = standard.RetryPolicy.should_retry

    def counting(self: standard.RetryPolicy, context: standard.RetryContext) -> bool:
        granted = bool(should_retry(self, context))
        if granted:
            counted[context.operation_model.name] += 1
        return granted

    monkeypatch.setattr(standard.RetryPolicy, "should_retry", counting)
    return counted


@pytest.fixture
def black_hole() -> Iterator[str]:
    """An endpoint on loopback that never completes a connection: a listener whose accept
    queue is full, so the kernel drops every further SYN (a connect timeout, which nothing in
    moto produces)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for sock in (*fillers, listener):
            sock.close()


@pytest.fixture
def short_connect_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """A connect timeout of half a second (the setting is 5 s)."""
    config = clients.CLIENT_CONFIG.merge(Config(connect_timeout=0.5))
    monkeypatch.setattr(clients, "CLIENT_CONFIG", config)


@pytest.fixture
def short_read_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """A read timeout below the silent fault's SILENT seconds (the setting is 30 s)."""
    config = clients.CLIENT_CONFIG.merge(Config(read_timeout=SILENT / 4))
    monkeypatch.setattr(clients, "CLIENT_CONFIG", config)


def _run(
    view: EmbeddedAws,
    moto_server: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    proxy: FaultProxy,
    **settings: str,
) -> dict[str, Any]:
    env = view.lambda_env(KMS_CLIENT=path, DYNAMODB_CLIENT=path, **settings)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with proxy, moto_server.iam_enforced():
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        return dict(lambda_handler(load_event("scheduled-event.json"), LocalLambdaContext()))


@pytest.mark.items(8)
@pytest.mark.parametrize("fault", list(FAULTS))
def test_both_transports_recover_from_the_same_faults_with_the_same_retries(
    fault: str,
    aws: EmbeddedAws,
    moto_server: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    retries: Counter[str],
    no_retry_delay: None,
    short_read_timeout: None,
) -> None:
    targets = {SCAN, WRITE, READ} if fault == "crc" else {DECRYPT, SCAN, WRITE, READ}
    seen: dict[str, dict[str, Any]] = {}
    for path in PATHS:
        view = aws.isolated(f"{aws.name}-{fault}-{path}")
        retries.clear()
        proxy = FaultProxy(
            moto_server.endpoint,
            every=3,
            targets=frozenset(targets),
            keep_host=True,
            max_in_a_row=2,
            fault=fault,
        )
        # One Decrypt at a time, and pages of 2 items (4 Scans, 4 BatchWriteItems): which
        # request is every 3rd is then the same on both paths.
        summary = _run(
            view, moto_server, monkeypatch, path, proxy, DECRYPT_CONCURRENCY="1", PAGE_SIZE="2"
        )
        copy = read_table(view.account_b().client("dynamodb"), view.destination_table)
        seen[path] = {"sent": dict(proxy.seen), "injected": dict(proxy.injected)}
        assert summary["status"] == "succeeded", (path, summary)
        assert differences(view.expected, copy) == [], path
        assert all(proxy.injected[target] >= 1 for target in targets), (path, seen[path])
        if not (fault == "truncate" and path == "botocore"):
            # Every injected fault was retried by botocore's policy, and nothing else was.
            assert sum(retries.values()) == sum(proxy.injected.values()), (path, seen[path])
        # botocore's transport (urllib3 2) hands a body cut short on as if it were whole: the
        # run finds the answer damaged and asks again (aws.errors.until_undamaged). The lean
        # transport finds it cut short and retries it as a connection fault. Either way each
        # fault costs one more request, and the copy is whole.
    assert seen["lean"] == seen["botocore"], seen


@pytest.mark.items(3)
@pytest.mark.parametrize(
    ("fault", "kinds"),
    [
        ("reset", {"botocore": "ConnectionClosedError", "lean": "ConnectionClosedError"}),
        ("close", {"botocore": "ConnectionClosedError", "lean": "ConnectionClosedError"}),
        # botocore's transport reads a body cut short as whole; the run finds it damaged.
        ("truncate", {"botocore": "DamagedResponse", "lean": "ConnectionClosedError"}),
    ],
)
def test_both_transports_give_up_in_one_line_and_write_nothing(
    fault: str,
    kinds: dict[str, str],
    aws: EmbeddedAws,
    moto_server: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    retries: Counter[str],
    no_retry_delay: None,
) -> None:
    """Every Decrypt faulted: each path retries as its transport allows, then fails the run
    with one line naming the attribute, the item's key and the error's kind, and writes
    nothing."""
    errors: dict[str, str] = {}
    attempts: dict[str, int] = {}
    for path in PATHS:
        view = aws.isolated(f"{aws.name}-{fault}-{path}")
        retries.clear()
        proxy = FaultProxy(
            moto_server.endpoint, every=1, targets=frozenset({DECRYPT}), keep_host=True, fault=fault
        )
        with pytest.raises(TableSyncError) as failed:
            _run(view, moto_server, monkeypatch, path, proxy, KMS_MAX_ATTEMPTS="3")
        errors[path] = str(failed.value)
        attempts[path] = proxy.injected[DECRYPT]
        assert read_table(view.account_b().client("dynamodb"), view.destination_table) == {}
        assert "\n" not in errors[path]
        assert errors[path].endswith(f": {kinds[path]}"), errors[path]
    if kinds["lean"] == kinds["botocore"]:
        assert errors["lean"] == errors["botocore"]
        assert attempts["lean"] == attempts["botocore"], attempts


@pytest.mark.items(3)
def test_both_transports_time_out_connecting_alike(
    aws: EmbeddedAws,
    moto_server: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    retries: Counter[str],
    no_retry_delay: None,
    short_connect_timeout: None,
    black_hole: str,
) -> None:
    """KMS at an endpoint whose connections never complete: each transport retries the
    connect timeout as botocore does (KMS_MAX_ATTEMPTS), then the run fails in one line and
    writes nothing."""
    errors: dict[str, str] = {}
    counted: dict[str, dict[str, int]] = {}
    for path in PATHS:
        view = aws.isolated(f"{aws.name}-connect-{path}")
        retries.clear()
        env = view.lambda_env(
            KMS_CLIENT=path, DYNAMODB_CLIENT=path, KMS_MAX_ATTEMPTS="2", DECRYPT_CONCURRENCY="1"
        )
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", black_hole)
        with pytest.raises(TableSyncError) as failed:
            lambda_handler(load_event("scheduled-event.json"), LocalLambdaContext())
        errors[path] = str(failed.value)
        counted[path] = dict(retries)
        assert retries["Decrypt"] >= 1, (path, counted[path])
        assert read_table(view.account_b().client("dynamodb"), view.destination_table) == {}
    assert counted["lean"] == counted["botocore"]
    assert errors["lean"] == errors["botocore"]
    assert "\n" not in errors["lean"]
    assert errors["lean"].endswith(": ConnectTimeoutError"), errors
