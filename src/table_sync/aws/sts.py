"""A boto3 session in the source account that renews itself: the seed's ``aws sts assume-role``.

Built on botocore's own machinery (boto3 issue 443, botocore issue 761):
:class:`~botocore.credentials.AssumeRoleCredentialFetcher` calls AssumeRole, and
:class:`~botocore.credentials.DeferredRefreshableCredentials` renews the session before it
expires, thread-safely, on whichever call first finds it due.

botocore's refresh windows are fixed at 15 minutes (advisory) and 10 minutes (mandatory) before
expiry. A 900-second session (the seed's default, and role chaining's usual choice) sits inside
both from its first second, so botocore would call AssumeRole again before almost every request.
The windows are therefore scaled to the session length (a third and a sixth of it, never more
than botocore's own), which keeps AssumeRole calls near ``runtime / (duration - window)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.session
from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    CredentialProvider,
    CredentialResolver,
    DeferredRefreshableCredentials,
    RefreshableCredentials,
)

from table_sync.aws.errors import translated
from table_sync.aws.sessions import on_models
from table_sync.errors import SourceAccessError
from table_sync.observability import CallCounter

_SESSION_NAME_CHARS = re.compile(r"[^\w+=,.@-]")
# botocore's own refresh windows, the upper bounds of ours.
_ADVISORY_MAX, _MANDATORY_MAX = 15 * 60, 10 * 60


def refresh_windows(duration_seconds: int) -> tuple[int, int]:
    """(advisory, mandatory) seconds before expiry at which to renew a session of this length."""
    return min(_ADVISORY_MAX, duration_seconds // 3), min(_MANDATORY_MAX, duration_seconds // 6)


def session_name(*parts: str) -> str:
    """A valid RoleSessionName (2-64 of ``[\\w+=,.@-]``) from e.g. function name and request id."""
    name = _SESSION_NAME_CHARS.sub("-", "@".join(p for p in parts if p))[:64]
    return name if len(name) >= 2 else "table-sync"


def _local_now() -> datetime:
    return datetime.now(UTC)


class _NoCache(dict[str, Any]):
    """A cache that never hits: every renewal must call AssumeRole."""

    def __contains__(self, key: object) -> bool:
        return False

    def __setitem__(self, key: str, value: Any) -> None:
        return None


class _AssumedRoleCredentials(DeferredRefreshableCredentials):
    """DeferredRefreshableCredentials with refresh windows sized to the session."""

    def __init__(
        self,
        refresh_using: Callable[[], dict[str, Any]],
        *,
        advisory: int,
        mandatory: int,
        time_fetcher: Callable[[], datetime],
    ) -> None:
        super().__init__(refresh_using, "assume-role", time_fetcher=time_fetcher)
        # RefreshableCredentials takes these as constructor arguments; its deferred subclass does
        # not pass them through, so set the same attributes its constructor would.
        self._advisory_refresh_timeout = advisory
        self._mandatory_refresh_timeout = mandatory


class _StaticProvider(CredentialProvider):
    METHOD = "assume-role"

    def __init__(self, credentials: RefreshableCredentials) -> None:
        self._credentials = credentials

    def load(self) -> RefreshableCredentials:
        return self._credentials


def _refreshing_credentials(
    base_core: botocore.session.Session,
    source_credentials: Any,
    role_arn: str,
    extra_args: dict[str, Any],
    duration_seconds: int,
    time_fetcher: Callable[[], datetime],
) -> _AssumedRoleCredentials:
    """botocore's AssumeRole fetcher behind refreshable credentials, windows sized to the
    session; nothing is fetched until first used."""
    advisory, mandatory = refresh_windows(duration_seconds)
    fetcher = AssumeRoleCredentialFetcher(
        client_creator=base_core.create_client,
        source_credentials=source_credentials,
        role_arn=role_arn,
        extra_args=extra_args,
        cache=_NoCache(),
        expiry_window_seconds=mandatory,
    )
    return _AssumedRoleCredentials(
        fetcher.fetch_credentials, advisory=advisory, mandatory=mandatory, time_fetcher=time_fetcher
    )


def assume_source_role(
    base: boto3.Session,
    *,
    role_arn: str,
    session_name: str,
    duration_seconds: int = 900,
    external_id: str | None = None,
    region: str | None = None,
    counter: CallCounter | None = None,
    time_fetcher: Callable[[], datetime] = _local_now,
) -> boto3.Session:
    """Return a boto3 session acting as ``role_arn``, renewed before expiry for as long as used.

    ``base`` holds the caller's own credentials (the function's execution role, or a laptop's
    profile). The first AssumeRole happens here, so a role that cannot be assumed fails now with
    a :class:`SourceAccessError`, before anything is read.
    """
    base_core = base._session  # the botocore session behind boto3's; boto3 exposes no accessor
    if counter is not None:
        base_core.register("before-call.sts.AssumeRole", counter)
    source_credentials = base_core.get_credentials()
    if source_credentials is None:
        raise SourceAccessError(
            "no AWS credentials to assume SOURCE_ROLE_ARN with: configure the caller's "
            "credentials (the function's role, or a profile)"
        )
    extra_args: dict[str, Any] = {
        "RoleSessionName": session_name,
        "DurationSeconds": duration_seconds,
    }
    if external_id:
        extra_args["ExternalId"] = external_id
    credentials = _refreshing_credentials(
        base_core, source_credentials, role_arn, extra_args, duration_seconds, time_fetcher
    )
    with translated(
        SourceAccessError,
        lambda code: f"cannot assume SOURCE_ROLE_ARN {role_arn}: {code}",
        hints={
            code: ". Check the role's trust policy names this caller's role (and the "
            "ExternalId condition, if any)"
            for code in ("AccessDenied", "AccessDeniedException", "403")
        },
    ):
        credentials.get_frozen_credentials()

    core = botocore.session.Session()
    core.register_component(
        "credential_provider", CredentialResolver([_StaticProvider(credentials)])
    )
    # The caller's parsed service models, not a second parse of the same files.
    loader = base_core.get_component("data_loader")
    return on_models(core, loader, region_name=region or base.region_name)
