"""The lean clients send each call where botocore's client sends it: plain, FIPS, dual-stack,
and DynamoDB's account-ID endpoints (AWS_ACCOUNT_ID_ENDPOINT_MODE), issue 27.

Two checks per mode. The URL: botocore's request is taken at its ``before-send`` event and
answered there, so it is never sent; the lean client's is its own resolution. The wire: both
clients are pointed at a recording proxy (HTTPS_PROXY) that refuses every host it cannot
resolve, so the CONNECT each client sends names the host it would have dialled, and nothing
leaves loopback. The refusal itself must come back as the same botocore error from both."""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import boto3
import pytest
from botocore import xform_name
from botocore.awsrequest import AWSResponse
from botocore.config import Config

from table_sync.aws.dynamodb_lean import LeanDynamoDBClient
from table_sync.aws.kms_lean import LeanKmsClient
from tests.integration.forward_proxy import ForwardProxy

ACCOUNT = "123456789012"
KEY = "arn:aws:kms:us-east-1:111111111111:key/11111111-2222-3333-4444-555555555555"
CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=5)
MODES: dict[str, dict[str, str]] = {
    "plain": {},
    "fips": {"AWS_USE_FIPS_ENDPOINT": "true"},
    "dual-stack": {"AWS_USE_DUALSTACK_ENDPOINT": "true"},
    "account-id preferred": {"AWS_ACCOUNT_ID_ENDPOINT_MODE": "preferred"},
    "account-id required": {"AWS_ACCOUNT_ID_ENDPOINT_MODE": "required"},
    "account-id disabled": {"AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled"},
}
CALLS: list[tuple[str, str, dict[str, Any]]] = [
    ("dynamodb", "Scan", {"TableName": "my-table"}),
    (
        "dynamodb",
        "BatchWriteItem",
        {"RequestItems": {"my-table-copy": [{"PutRequest": {"Item": {"pk": {"S": "x"}}}}]}},
    ),
    ("dynamodb", "Scan", {"TableName": "arn:aws:dynamodb:us-east-1:111111111111:table/my-table"}),
    ("kms", "Decrypt", {"CiphertextBlob": b"x", "KeyId": KEY}),
]


@pytest.fixture
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in ("AWS_ENDPOINT_URL", *{n for env in MODES.values() for n in env}):
        monkeypatch.delenv(name, raising=False)
    for name, value in MODES[request.param].items():
        monkeypatch.setenv(name, value)
    return str(request.param)


def _session() -> boto3.Session:
    return boto3.Session(
        aws_access_key_id="AKIAENDPOINTTEST",
        aws_secret_access_key="not-a-secret",
        aws_account_id=ACCOUNT,
        region_name="us-east-1",
    )


def _botocore_url(client: Any, operation: str, params: dict[str, Any]) -> str:
    sent: list[str] = []

    def answer(request: Any, **_: Any) -> AWSResponse:
        sent.append(request.url)
        return AWSResponse(request.url, 200, {}, None)

    client.meta.events.register("before-send", answer)
    with contextlib.suppress(Exception):  # the empty answer parses as it may: the URL counts
        getattr(client, xform_name(operation))(**params)
    return sent[0]


def _lean(service: str, session: boto3.Session, client: Any) -> Any:
    if service == "kms":
        return LeanKmsClient(session, "us-east-1", CONFIG, botocore_client=client)
    return LeanDynamoDBClient(client, session)._lean


@pytest.mark.parametrize("mode", list(MODES), indirect=True)
def test_the_lean_endpoint_is_the_one_botocore_sends_to(mode: str) -> None:
    session = _session()
    for service, operation, params in CALLS:
        client = session.client(service, config=CONFIG)  # type: ignore[call-overload]
        expected = _botocore_url(client, operation, params)
        lean = _lean(service, session, session.client(service, config=CONFIG))  # type: ignore[call-overload]
        assert lean.endpoint(operation, params).url.rstrip("/") == expected.rstrip("/"), (
            mode,
            operation,
        )
    if mode.startswith("account-id") and mode != "account-id disabled":
        assert f"https://{ACCOUNT}.ddb.us-east-1.amazonaws.com" in expected_hosts(session)


def expected_hosts(session: boto3.Session) -> set[str]:
    client = session.client("dynamodb", config=CONFIG)  # type: ignore[call-overload]
    return {_botocore_url(client, "Scan", {"TableName": "my-table"}).rstrip("/")}


@pytest.mark.parametrize("mode", ["plain", "fips", "account-id preferred"], indirect=True)
def test_both_clients_dial_the_same_host_and_fail_the_same_way(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ForwardProxy(names={}) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        for name in ("NO_PROXY", "no_proxy", "https_proxy"):
            monkeypatch.delenv(name, raising=False)
        session = _session()
        errors: dict[str, list[str]] = {"botocore": [], "lean": []}
        dialled: dict[str, list[str]] = {"botocore": [], "lean": []}
        for service, operation, params in CALLS:
            botocore_client = session.client(service, config=CONFIG)  # type: ignore[call-overload]
            method = getattr(botocore_client, xform_name(operation))
            lean = _lean(service, session, session.client(service, config=CONFIG))  # type: ignore[call-overload]
            for path, call in (
                ("botocore", functools.partial(method, **params)),
                ("lean", functools.partial(lean.call, operation, b"{}", params)),
            ):
                tunnels = sum(proxy.tunnels.values())
                with pytest.raises(Exception) as error:  # noqa: PT011 - compared below
                    call()
                errors[path].append(type(error.value).__name__)
                # One attempt (no retries), so one CONNECT, naming the host it would dial.
                assert sum(proxy.tunnels.values()) == tunnels + 1
                dialled[path].append(proxy.last_tunnel)
    assert errors["lean"] == errors["botocore"]
    assert set(errors["lean"]) == {"ProxyConnectionError"}
    assert dialled["lean"] == dialled["botocore"], dialled
    if mode == "account-id preferred":
        assert dialled["lean"][0] == f"{ACCOUNT}.ddb.us-east-1.amazonaws.com:443"
        assert dialled["lean"][2] == "111111111111.ddb.us-east-1.amazonaws.com:443"  # the ARN's
    if mode == "fips":
        assert dialled["lean"][3] == "kms-fips.us-east-1.amazonaws.com:443"
