"""The two accounts of the embedded AWS and sessions acting in them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import boto3

ACCOUNT_A = "111111111111"  # owns my-table and its KMS key
ACCOUNT_B = "222222222222"  # runs the function and holds the copy
REGION = "eu-west-1"
# moto acts in whichever account an assumed role's ARN names; this role stands in for each
# account's administrator while provisioning.
ADMIN_ROLE = "embedded-admin"


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str

    @classmethod
    def from_sts(cls, response: dict[str, Any]) -> Credentials:
        creds = response["Credentials"]
        return cls(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])

    def session(self, region: str = REGION) -> boto3.Session:
        return boto3.Session(
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            aws_session_token=self.session_token,
            region_name=region,
        )

    def as_env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_SESSION_TOKEN": self.session_token,
        }


@dataclass
class Account:
    """An account of the embedded AWS, reached through an assumed role. Its session and one
    client per service are made once and reused (boto3 clients are thread-safe)."""

    account_id: str
    endpoint: str
    credentials: Credentials
    region: str = REGION
    _session: boto3.Session | None = field(default=None, repr=False, compare=False)
    _clients: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def session(self) -> boto3.Session:
        if self._session is None:
            self._session = self.credentials.session(self.region)
        return self._session

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session().client(service, endpoint_url=self.endpoint)  # type: ignore[call-overload]
        return self._clients[service]


def assume(
    endpoint: str,
    role_arn: str,
    *,
    via: Credentials | None = None,
    session_name: str = "embedded",
    duration: int = 3600,
) -> Credentials:
    """AssumeRole on the embedded AWS, with ``via``'s credentials or moto's default ones."""
    keys: dict[str, str] = (
        {
            "aws_access_key_id": via.access_key_id,
            "aws_secret_access_key": via.secret_access_key,
            "aws_session_token": via.session_token,
        }
        if via
        else {"aws_access_key_id": "embedded", "aws_secret_access_key": "embedded"}
    )
    sts = boto3.client("sts", endpoint_url=endpoint, region_name=REGION, **keys)  # type: ignore[call-overload]
    return Credentials.from_sts(
        sts.assume_role(RoleArn=role_arn, RoleSessionName=session_name, DurationSeconds=duration)
    )


def admin(endpoint: str, account_id: str) -> Account:
    role = f"arn:aws:iam::{account_id}:role/{ADMIN_ROLE}"
    return Account(account_id, endpoint, assume(endpoint, role, session_name="provision"))
