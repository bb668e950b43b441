"""The source session: what AssumeRole is asked for, and how often a long run renews it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from table_sync.aws import sts
from table_sync.aws.sts import assume_source_role
from table_sync.function import handle_event
from table_sync.observability import CallCounter
from table_sync_dev.local.accounts import ACCOUNT_A
from table_sync_dev.local.seed import EmbeddedAws
from tests.conftest import load_event


def test_assume_role_uses_the_configured_session(
    aws: EmbeddedAws, function_env: dict[str, str], lambda_context
) -> None:
    requests: list[dict[str, Any]] = []
    base = boto3.Session()
    base.events.register(
        "before-parameter-build.sts.AssumeRole", lambda params, **_: requests.append(dict(params))
    )
    lambda_context.aws_request_id = "8f1c6c0e-request"
    handle_event(
        load_event("scheduled-event.json"), lambda_context, environ=function_env, base_session=base
    )
    assert requests == [
        {
            "RoleArn": aws.reader_role_arn,
            "RoleSessionName": "table-sync-test@8f1c6c0e-request",
            "DurationSeconds": 900,
            "ExternalId": aws.external_id,
        }
    ]


def test_source_session_acts_as_the_reader_role_in_account_a(
    aws: EmbeddedAws, function_session: boto3.Session
) -> None:
    source = assume_source_role(
        function_session, role_arn=aws.reader_role_arn, session_name="check", external_id="x-1"
    )
    identity = source.client("sts").get_caller_identity()
    assert identity["Account"] == ACCOUNT_A
    assert ":assumed-role/table-sync-source-reader/check" in identity["Arn"]


def test_the_source_session_shares_the_callers_models_and_leaves_their_search_as_it_was(
    aws: EmbeddedAws, function_session: boto3.Session
) -> None:
    """The assumed role's session uses the caller's parsed models. boto3 appends its data
    directory to the loader of every session it makes; on the shared loader, each AssumeRole
    session (one per invocation) added it again before this was fixed."""
    loader = function_session._session.get_component("data_loader")  # type: ignore[attr-defined]
    before = list(loader.search_paths)
    for n in range(2):
        source = assume_source_role(
            function_session, role_arn=aws.reader_role_arn, session_name=f"m{n}", external_id="x-1"
        )
        assert source._session.get_component("data_loader") is loader  # type: ignore[attr-defined]
    assert loader.search_paths == before


class SimulatedClock:
    """Time that passes when the test says so. moto stamps Expiration with the real clock, so an
    after-call hook restamps it on the simulated one (moto cannot age a session)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def restamp(self, parsed: dict[str, Any], **_: Any) -> None:
        if "Credentials" in parsed:
            parsed["Credentials"]["Expiration"] = self.now + timedelta(seconds=900)


def _long_run(aws: EmbeddedAws, function_session: boto3.Session, seconds: int, step: int) -> int:
    clock = SimulatedClock()
    counter = CallCounter()
    function_session.events.register("after-call.sts.AssumeRole", clock.restamp)
    source = assume_source_role(
        function_session,
        role_arn=aws.reader_role_arn,
        session_name="long-run",
        duration_seconds=900,
        counter=counter,
        time_fetcher=clock,
    )
    ddb = source.client("dynamodb")
    for _ in range(seconds // step):
        ddb.get_item(TableName=aws.source_table, Key={"pk": {"S": "customer#00000"}})
        clock.now += timedelta(seconds=step)
    return counter.calls


def test_a_long_run_renews_about_once_per_session(
    aws: EmbeddedAws, function_session: boto3.Session
) -> None:
    """One simulated hour of calls every 10 s with 900-second sessions (renewed 300 s early)."""
    calls = _long_run(aws, function_session, seconds=3600, step=10)
    # The first AssumeRole, then a renewal on the first call more than 600 s into each session
    # (t = 610, 1220, 1830, 2440, 3050): runtime / (duration - advisory window) = 3600 / 600.
    assert calls == 6


def test_botocores_default_windows_would_renew_on_every_call(
    aws: EmbeddedAws, function_session: boto3.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reason for sizing the windows: a 900 s session is inside botocore's 15 min window."""
    monkeypatch.setattr(sts, "refresh_windows", lambda duration: (15 * 60, 10 * 60))
    calls = _long_run(aws, function_session, seconds=600, step=10)
    assert calls >= 60
