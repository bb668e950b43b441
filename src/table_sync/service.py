"""Composition: settings + invocation + the caller's credentials -> clients, sink and a run.

Shared by the Lambda handler and the CLI. Everything that could be wrong with the input is
checked before the first AWS call: settings, the event, and the destination override.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import NoRegionError

from table_sync.aws.dynamodb import scan_pages
from table_sync.aws.kms import KmsDecrypter
from table_sync.aws.sts import AssumeRoleCounter, assume_source_role, session_name
from table_sync.compare import Comparison, compare_digests, digest, latest_export, read_export
from table_sync.errors import ConfigurationError, DestinationError, TableSyncError
from table_sync.formats import AttributeDecryptFailed, ItemDecoder, build_decoder
from table_sync.items import Item, describe_key
from table_sync.models import (
    DynamoDBDestination,
    Invocation,
    Settings,
    SkippedRun,
    SyncSummary,
    parse_event,
)
from table_sync.observability import logger, metrics
from table_sync.quarantine import DynamoDBQuarantine, QuarantineStore, S3Quarantine
from table_sync.sinks import DryRunSink, Sink
from table_sync.sinks.dynamodb import DynamoDBSink
from table_sync.sinks.s3 import S3ExportSink, sse_arguments
from table_sync.state import StateStore
from table_sync.sync import Progress, SyncContext, run_sync

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


class LambdaContextLike(Protocol):
    @property
    def function_name(self) -> str: ...

    @property
    def aws_request_id(self) -> str: ...

    def get_remaining_time_in_millis(self) -> int: ...


def new_run_id() -> str:
    """Sortable like DynamoDB's export ids: milliseconds since the epoch, then 8 random hex."""
    return f"{int(time.time() * 1000):014d}-{uuid.uuid4().hex[:8]}"


def run_id_for(invocation: Invocation) -> str:
    """The run an invocation belongs to. A scheduled event keeps its id and time when EventBridge
    retries it, so a retry of a failed or timed-out run resumes that run instead of restarting."""
    if invocation.run_id:
        return invocation.run_id
    if invocation.event_id and invocation.time:
        digest = hashlib.sha256(invocation.event_id.encode()).hexdigest()[:8]
        return f"{int(invocation.time.timestamp() * 1000):014d}-{digest}"
    return new_run_id()


def apply_invocation(settings: Settings, invocation: Invocation) -> Settings:
    """Settings with the event's overrides (backfill: dry run, page size, destination)."""
    update: dict[str, Any] = {}
    if invocation.dry_run:
        update["dry_run"] = True
    if invocation.page_size is not None:
        update["page_size"] = invocation.page_size
    if invocation.destination is not None:
        update["destination"] = invocation.destination
    if invocation.total_segments is not None:
        update["total_segments"] = invocation.total_segments
        update["segment"] = invocation.segment if invocation.segment is not None else 0
    if not update:
        return settings
    updated = settings.model_copy(update=update)
    updated.check_consistency()
    return updated


def kms_client_config(settings: Settings) -> Config:
    """KMS: botocore's standard retries (exponential backoff with jitter on ThrottlingException)
    up to KMS_MAX_ATTEMPTS, and a connection pool sized for the decrypt threads. Not adaptive
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
            retries={"mode": "standard", "max_attempts": settings.kms_max_attempts},
            max_pool_connections=max(10, settings.decrypt_concurrency),
            parameter_validation=False,
            user_agent=botocore.session.get_session().user_agent(),
        )
    )


def build_quarantine(
    settings: Settings, destination_session: boto3.Session, run_id: str
) -> QuarantineStore | None:
    target = settings.quarantine_target
    if target is None:
        return None
    if isinstance(target, DynamoDBDestination):
        return DynamoDBQuarantine(
            destination_session.client("dynamodb", config=CLIENT_CONFIG), target.table_name
        )
    return S3Quarantine(
        destination_session.client("s3", config=CLIENT_CONFIG),
        target.bucket,
        target.prefix,
        run_id,
        sse_arguments(settings.destination_kms_key_arn),
    )


def connect_source(
    settings: Settings,
    base_session: boto3.Session,
    role_session_name: str,
    counter: AssumeRoleCounter | None = None,
) -> tuple[DynamoDBClient, KmsDecrypter]:
    """The source side: assume the reader role, then its DynamoDB client and KMS decrypter."""
    source_session = assume_source_role(
        base_session,
        role_arn=settings.source_role_arn,
        session_name=role_session_name,
        duration_seconds=settings.source_session_duration,
        external_id=settings.source_external_id,
        region=settings.table_region,
        counter=counter,
    )
    source = source_session.client(
        "dynamodb", region_name=settings.table_region, config=CLIENT_CONFIG
    )
    kms = KmsDecrypter(
        source_session.client(
            "kms", region_name=settings.kms_region, config=kms_client_config(settings)
        ),
        settings.source_kms_key_arn,
        cache_size=settings.kms_cache_size,
    )
    return source, kms


def build_state(settings: Settings, destination_session: boto3.Session) -> StateStore | None:
    """The run-state store, unless none is configured or this is a dry run (which writes
    nothing, state included)."""
    if not settings.state_table or settings.dry_run:
        return None
    return StateStore(
        destination_session.client("dynamodb", config=CLIENT_CONFIG), settings.state_table
    )


def build_sink(settings: Settings, destination_session: boto3.Session, run_id: str) -> Sink:
    if settings.dry_run:
        return DryRunSink()
    if isinstance(settings.destination, DynamoDBDestination):
        return DynamoDBSink(
            destination_session.client("dynamodb", config=CLIENT_CONFIG),
            settings.destination.table_name,
            max_attempts=settings.write_max_attempts,
            backoff_base=settings.write_backoff_base,
            backoff_cap=settings.write_backoff_cap,
            mark=run_id if settings.sweep_deletes else None,
            concurrency=settings.write_concurrency,
        )
    return S3ExportSink(
        destination_session.client("s3", config=CLIENT_CONFIG),
        settings.destination.bucket,
        settings.destination.prefix,
        export_id=run_id,
        table_arn=settings.source_table_arn,
        sse_kms_key_arn=settings.destination_kms_key_arn,
        max_file_bytes=settings.s3_file_max_bytes,
        segment=settings.segment or 0,
        latest_pointer=True,
    )


def sync(
    settings: Settings,
    invocation: Invocation,
    *,
    base_session: boto3.Session,
    role_session_name: str,
    run_id: str | None = None,
    on_page: Callable[[Progress], None] | None = None,
    remaining_ms: Callable[[], int] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> SyncSummary | SkippedRun:
    """Assume the source role with ``base_session``'s credentials and run one sync (or one
    step of it: a segment, until its time budget, or the finalize of a parallel run)."""
    run_id = run_id or run_id_for(invocation)
    counter = AssumeRoleCounter()
    logger.append_keys(run_id=run_id, segment=settings.segment)
    try:
        state = build_state(settings, base_session)
    except NoRegionError:
        raise ConfigurationError(
            ["AWS_REGION: not set, and no region is configured for the destination"]
        ) from None
    if state is not None:
        lease = state.acquire_lease(settings.destination.uri, run_id, settings.lease_seconds)
        if not lease.held:
            skipped = SkippedRun(
                run_id=run_id,
                destination=settings.destination.uri,
                reason="another run is writing this destination",
                held_by=lease.holder,
                lease_expires_at=datetime.fromtimestamp(lease.expires_at, UTC),
            )
            logger.warning("run skipped", extra=skipped.model_dump(mode="json"))
            return skipped
    if invocation.trigger == "finalize":
        return finalize_run(
            settings, invocation, run_id=run_id, base_session=base_session, state=state
        )
    try:
        source, kms = connect_source(settings, base_session, role_session_name, counter)
        sink = build_sink(settings, base_session, run_id)
        quarantine = build_quarantine(settings, base_session, run_id)
    except NoRegionError:
        raise ConfigurationError(
            ["AWS_REGION: not set, and no region is configured for the destination"]
        ) from None
    summary = run_sync(
        settings,
        SyncContext(
            run_id=run_id,
            invocation=invocation,
            assume_role_calls=lambda: counter.calls,
            state=state,
            remaining_ms=remaining_ms,
        ),
        source=source,
        kms=kms,
        sink=sink,
        quarantine=quarantine,
        on_page=on_page,
        clock=clock,
        sleep=sleep,
    )
    if state is not None and summary.status == "succeeded":
        state.release_lease(settings.destination.uri, run_id)
    return summary


def finalize_run(
    settings: Settings,
    invocation: Invocation,
    *,
    run_id: str,
    base_session: boto3.Session,
    state: StateStore | None,
) -> SyncSummary:
    """After every segment of a parallel run is done: write the S3 manifests (or sweep deleted
    items from a DynamoDB copy), release the lease, and report the whole run."""
    if state is None:
        raise ConfigurationError(["STATE_TABLE: required to finalize a parallel run"])
    total = invocation.total_segments or 1
    checkpoints = state.segments(run_id, total)
    unfinished = [n for n, c in enumerate(checkpoints) if c is None or not c.done]
    if unfinished:
        raise DestinationError(
            f"run {run_id} cannot be finalized: segment(s) {unfinished} are not done"
        )
    done = [c for c in checkpoints if c is not None]
    sink = build_sink(settings.model_copy(update={"segment": 0}), base_session, run_id)
    sink.prepare()
    started_at = min(datetime.fromisoformat(c.started_at) for c in done)
    finished_at = datetime.now(UTC)
    if isinstance(sink, S3ExportSink):
        files = sorted((f for c in done for f in c.files), key=lambda f: f["dataFileS3Key"])
        sink.write_manifests(files, started_at=started_at, finished_at=finished_at)
    else:
        sink.finish(started_at=started_at, finished_at=finished_at)
    state.release_lease(settings.destination.uri, run_id)

    def total_of(name: str) -> int:
        return sum(int(getattr(c, name)) for c in done)

    return SyncSummary(
        run_id=run_id,
        trigger="finalize",
        event_id=invocation.event_id,
        dry_run=settings.dry_run,
        item_format=settings.item_format,
        source_table=settings.source_table_arn,
        destination=settings.destination.uri,
        location=sink.location,
        quarantine=None,
        items_scanned=total_of("items_scanned"),
        items_decrypted=total_of("items_decrypted"),
        attributes_decrypted=total_of("attributes_decrypted"),
        items_written=total_of("items_written"),
        items_quarantined=total_of("items_quarantined"),
        pages=total_of("pages"),
        total_segments=total,
        kms_requests=total_of("kms_requests"),
        kms_cache_hits=0,
        items_swept=getattr(sink, "items_swept", 0),
        assume_role_calls=0,
        seconds=round((finished_at - started_at).total_seconds(), 3),
        started_at=started_at,
        finished_at=finished_at,
    )


def handle_event(
    event: Any,
    context: LambdaContextLike,
    *,
    environ: Mapping[str, str],
    base_session: boto3.Session | None = None,
) -> SyncSummary | SkippedRun:
    """The Lambda's work: validate everything, run, and report as logs and EMF metrics."""
    try:
        settings = Settings.from_env(environ)
        invocation = parse_event(event)
        settings = apply_invocation(settings, invocation)
        summary = sync(
            settings,
            invocation,
            base_session=base_session or boto3.Session(),
            role_session_name=session_name(context.function_name, context.aws_request_id),
            remaining_ms=context.get_remaining_time_in_millis,
        )
    except TableSyncError as exc:
        metrics.add_metric(name="RunsFailed", unit="Count", value=1)
        logger.error("sync failed", extra={"error_kind": type(exc).__name__, "error": str(exc)})
        raise
    if isinstance(summary, SkippedRun):
        metrics.add_metric(name="RunsSkipped", unit="Count", value=1)
        return summary
    for name, (value, unit) in summary.metrics().items():
        metrics.add_metric(name=name, unit=unit, value=value)
    if summary.status == "succeeded":
        metrics.add_metric(name="RunsSucceeded", unit="Count", value=1)
    logger.info(f"sync {summary.status}", extra={"summary": summary.model_dump(mode="json")})
    return summary


def verify_copy(
    settings: Settings,
    *,
    base_session: boto3.Session,
    role_session_name: str,
    location: str | None = None,
) -> tuple[Comparison, str]:
    """Compare the source (decrypted as a sync would) with the destination, item by item, by
    SHA-256 digest. Returns the comparison and where the copy was read from."""
    source, kms = connect_source(settings, base_session, role_session_name)
    keys = settings.source_key_attributes
    destination: Iterator[tuple[str, str]]
    if isinstance(settings.destination, DynamoDBDestination):
        ddb = base_session.client("dynamodb", config=CLIENT_CONFIG)
        table = settings.destination.table_name
        copy = DynamoDBSink(ddb, table)
        copy.prepare()  # DescribeTable only: the copy's key schema, with the sink's own checks
        keys = keys or copy.key_attributes
        destination = (
            (describe_key(item, keys), digest(item))
            for page in ddb.get_paginator("scan").paginate(TableName=table)
            for item in page["Items"]
        )
        where = f"dynamodb://{table}"
    else:
        if not keys:
            raise ConfigurationError(
                [
                    "SOURCE_KEY_ATTRIBUTES: required to verify an s3:// copy (items are matched by key)"
                ]
            )
        s3 = base_session.client("s3", config=CLIENT_CONFIG)
        bucket = settings.destination.bucket
        found = location or latest_export(s3, bucket, settings.destination.prefix)
        if found is None:
            raise DestinationError(f"no complete export under {settings.destination.uri}")
        export = read_export(s3, bucket, found, key=keys[0])
        destination = ((describe_key(i, keys), digest(i)) for i in export.items.values())
        where = found
    decoder = build_decoder(settings, kms, keys)

    def source_digests() -> Iterator[tuple[str, str | None]]:
        with ThreadPoolExecutor(settings.decrypt_concurrency) as pool:
            for page in scan_pages(
                source, settings.source_table_name, page_size=settings.page_size
            ):
                for item, result in zip(
                    page.items,
                    pool.map(lambda i: _decoded_digest(decoder, i), page.items),
                    strict=True,
                ):
                    yield describe_key(item, keys), result

    return compare_digests(source_digests(), destination), where


def _decoded_digest(decoder: ItemDecoder, item: Item) -> str | None:
    try:
        return digest(decoder.decode(item).item)
    except AttributeDecryptFailed:
        return None
