"""Client configuration, and the two sides of a run: AccountB's clients and AccountA's.

Every client a run makes comes from here, so retries, timeouts and the one translation of a
missing region into a configuration error are decided once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config
from botocore.exceptions import NoRegionError

from table_sync.aws.crt_http import Unsupported
from table_sync.aws.dynamodb_lean import LeanDynamoDBClient
from table_sync.aws.kms import KmsDecrypter
from table_sync.aws.kms_lean import LeanKmsClient
from table_sync.aws.sessions import on_models
from table_sync.aws.sts import assume_source_role
from table_sync.errors import ConfigurationError
from table_sync.models import Settings
from table_sync.observability import CallCounter, logger

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# botocore's standard retry mode backs off (with jitter) on throttling and transient errors,
# KMS's ThrottlingException and DynamoDB's ProvisionedThroughputExceededException included.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 10},
    connect_timeout=5,
    read_timeout=30,
    max_pool_connections=32,
    user_agent_extra="table-sync",
)


@functools.cache
def _shared_loader(data_path: str | None) -> botocore.loaders.Loader:
    """One loader per process (per AWS_DATA_PATH), made as botocore makes a session's own."""
    return botocore.loaders.create_loader(data_path)


def new_session(**kwargs: Any) -> boto3.Session:
    """A boto3 session (credentials, region and endpoint resolved as usual, per session) whose
    service models are parsed once per process: every new botocore session would parse them
    again, about 25 ms for each client it makes (measured: 4 clients in a new session 100 ms,
    23 ms with the loader shared). The assumed-role session shares it too (sts.py)."""
    core = botocore.session.Session()
    return on_models(core, _shared_loader(core.get_config_variable("data_path")), **kwargs)


def caller_client(session: boto3.Session, service: str) -> Any:
    """A client with the caller's own credentials (AccountB): destination, quarantine, state."""
    try:
        return session.client(service, config=CLIENT_CONFIG)  # type: ignore[call-overload]
    except NoRegionError:
        raise ConfigurationError(
            ["AWS_REGION: not set, and no region is configured for the destination"]
        ) from None


def _lean(make: Callable[[], Any], client: Any, setting: str) -> Any:
    """The lean client ``make`` makes, or ``client`` itself where the lean transport cannot
    honour one of botocore's transport settings (the log names which, never its value)."""
    try:
        return make()
    except Unsupported as unsupported:
        logger.info(
            "botocore's transport sends these calls: the lean one cannot honour a setting",
            extra={"setting": setting, "unsupported": str(unsupported)},
        )
        return client


def dynamodb_client(settings: Settings, client: Any, session: boto3.Session) -> Any:
    """``client``, its Scan, BatchWriteItem and BatchGetItem sent lean unless
    DYNAMODB_CLIENT=botocore (``session``: the one it was made from)."""
    if settings.dynamodb_client == "lean":
        return _lean(lambda: LeanDynamoDBClient(client, session), client, "DYNAMODB_CLIENT")
    return client


def kms_client_config(settings: Settings) -> Config:
    """KMS: botocore's standard retries (exponential backoff with jitter on ThrottlingException)
    up to KMS_MAX_ATTEMPTS, and a connection pool sized for DECRYPT_CONCURRENCY Decrypts in
    flight. Not adaptive
    mode: botocore marks it experimental, and its client-side rate limiter slows every later
    request after a burst of throttles.

    Decrypt is called once per ciphertext, so its client's fixed cost per call is most of a
    sync's CPU (see bench/). Two of botocore's per-call steps are skipped here, and only here:
    parameter validation (every Decrypt's parameters are built by KmsDecrypter: bytes, the
    validated key ARN, a dict of strings) and rebuilding the User-Agent header on every request
    (a fixed one, botocore's own string, is given instead). Together about a fifth of the CPU
    a Decrypt costs the client."""
    return CLIENT_CONFIG.merge(
        Config(
            # total_max_attempts counts the first attempt; botocore's max_attempts does not.
            retries={"mode": "standard", "total_max_attempts": settings.kms_max_attempts},
            max_pool_connections=max(10, settings.decrypt_concurrency),
            parameter_validation=False,
            user_agent=botocore.session.get_session().user_agent(),
        )
    )


@dataclass(frozen=True)
class SourceConnection:
    """AccountA, as the reader role: the scan's DynamoDB client and the KMS decrypter."""

    dynamodb: DynamoDBClient
    kms: KmsDecrypter


def connect_source(
    settings: Settings,
    base_session: boto3.Session,
    role_session_name: str,
    counter: CallCounter | None = None,
) -> SourceConnection:
    """Assume the reader role with the caller's credentials (fails now if it cannot be)."""
    source_session = assume_source_role(
        base_session,
        role_arn=settings.source_role_arn,
        session_name=role_session_name,
        duration_seconds=settings.source_session_duration,
        external_id=settings.source_external_id,
        region=settings.table_region,
        counter=counter,
    )
    kms_config = kms_client_config(settings)
    kms_client: Any = source_session.client(
        "kms", region_name=settings.kms_region, config=kms_config
    )
    if settings.kms_client == "lean":
        botocore_kms = kms_client
        kms_client = _lean(
            lambda: LeanKmsClient(
                source_session, settings.kms_region, kms_config, botocore_client=botocore_kms
            ),
            botocore_kms,
            "KMS_CLIENT",
        )
    dynamodb = source_session.client(
        "dynamodb", region_name=settings.table_region, config=CLIENT_CONFIG
    )
    return SourceConnection(
        dynamodb=dynamodb_client(settings, dynamodb, source_session),
        kms=KmsDecrypter(
            kms_client, settings.source_kms_key_arn, cache_size=settings.kms_cache_size
        ),
    )


def destination_kms_client(
    session: boto3.Session, key_arn: str, counter: CallCounter | None = None
) -> Any:
    """A KMS client in AccountB for one of its keys (in the key's region), with the caller's
    credentials; ``counter`` counts the requests it sends."""
    region = key_arn.split(":")[3]
    client = session.client("kms", region_name=region, config=CLIENT_CONFIG)
    if counter is not None:
        client.meta.events.register("before-send.kms", counter)
    return client
