"""The embedded AWS's server: moto's, with AssumeRole's trust check made cross-account.

With IAM enforcement on, moto checks an AssumeRole against the target role's trust policy (its
principal and its ``sts:ExternalId`` condition) only when the role is in the caller's own
account, it compares the policy's principal with the caller's *session* ARN, and a request
without the ExternalId a condition names passes. table-sync's
AssumeRole is always cross-account (AccountB's function role into AccountA's reader role), so a
wrong ExternalId, or a caller the reader role does not trust, went through.

This module patches the check (moto has no hook for it) so that it reads the trust policy of the
role in the account its ARN names and takes as the principal what AWS matches: the caller's role
ARN, or its account's root. Everything else is moto's own code; ``python -m
table_sync_dev.local.moto_main`` takes moto.server's arguments.
"""

from __future__ import annotations

import contextlib
from typing import Any

from moto.iam import access_control
from moto.iam.models import iam_backends
from moto.iam.utils import (
    REQUIRE_RESOURCE_ACCESS_POLICIES_CHECK,
    format_incoming_conditional_values,
)
from moto.utilities.utils import get_partition

PERMITTED = access_control.PermissionResult.PERMITTED


def _role(request: Any, role_arn: str) -> Any | None:
    """The role ``role_arn`` names, looked up in the account the ARN names."""
    parts = role_arn.split(":")
    if len(parts) < 6 or ":role/" not in role_arn:
        return None
    backend = iam_backends[parts[4]][get_partition(request._region)]
    try:
        return backend.get_role_by_arn(role_arn)
    except Exception:  # moto's NotFound types differ by version: no such role
        return None


def _principals(request: Any) -> list[str]:
    """What a trust policy's ``Principal.AWS`` may name to admit the caller, as AWS matches it."""
    key = request._access_key
    account = key.account_id
    partition = get_partition(request._region)
    principals = [key.arn, f"arn:{partition}:iam::{account}:root", account]
    if isinstance(key, access_control.AssumedRoleAccessKey):
        backend = iam_backends[account][partition]
        # A session of a deleted role is left with its session ARN.
        with contextlib.suppress(Exception):
            principals.insert(0, backend.get_role(key._owner_role_name).arn)
    return principals


def _is_assuming_role_operation(self: Any, resource_arn: str) -> bool:
    return (
        self._action in REQUIRE_RESOURCE_ACCESS_POLICIES_CHECK
        and _role(self, resource_arn) is not None
    )


def _check_role_trust_relationship(self: Any, role_arn: str) -> bool:
    role = _role(self, role_arn)
    if role is None:
        return False
    policy = access_control.IAMPolicy(role.assume_role_policy_document)
    conditions = format_incoming_conditional_values(self._data)
    # moto passes a StringEquals whose key the request lacks; AWS does not. An ExternalId no
    # policy may name (AWS needs at least 2 characters) makes moto compare, and fail, instead.
    conditions.setdefault("sts:ExternalId", "")
    return any(_admits(policy, self._action, role_arn, p, conditions) for p in _principals(self))


def _admits(
    policy: Any, action: str, role_arn: str, principal: str, conditions: dict[str, str]
) -> bool:
    try:
        return bool(
            policy.is_action_permitted(action, role_arn, principal, conditions) == PERMITTED
        )
    except TypeError:  # moto compares with Principal.AWS even when only Principal.Service is set
        return False


def patch() -> None:
    access_control.IAMRequestBase._is_assuming_role_operation = _is_assuming_role_operation  # type: ignore[method-assign]
    access_control.IAMRequestBase._check_role_trust_relationship = (  # type: ignore[method-assign]
        _check_role_trust_relationship
    )


def main() -> None:
    from moto.server import main as moto_server

    patch()
    moto_server()


if __name__ == "__main__":
    main()
