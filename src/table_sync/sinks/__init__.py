"""Destinations in AccountB, one module each, behind one interface (:mod:`.base`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from table_sync.aws.clients import caller_client, dynamodb_client
from table_sync.models import DynamoDBDestination, Settings
from table_sync.sinks.base import Finalized, Sink, SinkState
from table_sync.sinks.change_index import ChangeIndex, ExportChain
from table_sync.sinks.dry_run import DryRunSink
from table_sync.sinks.dynamodb import DynamoDBSink
from table_sync.sinks.s3 import S3ExportSink
from table_sync.state import StateStore

if TYPE_CHECKING:
    import boto3

__all__ = [
    "DryRunSink",
    "DynamoDBSink",
    "Finalized",
    "S3ExportSink",
    "Sink",
    "SinkState",
    "build_sink",
]


def _table_sink(settings: Settings, destination: boto3.Session, table: str) -> DynamoDBSink:
    return DynamoDBSink(
        dynamodb_client(settings, caller_client(destination, "dynamodb"), destination),
        table,
        max_attempts=settings.write_max_attempts,
        backoff_base=settings.write_backoff_base,
        backoff_cap=settings.write_backoff_cap,
        concurrency=settings.write_concurrency,
        read_concurrency=settings.read_concurrency,
    )


def _change_index(
    settings: Settings, destination: boto3.Session, run_id: str
) -> ChangeIndex | None:
    """An s3:// copy's change index and chain of exports (CHANGE_INDEX_TABLE, STATE_TABLE)."""
    if not settings.incremental or not settings.change_index_table or not settings.state_table:
        return None
    chain = ExportChain(
        StateStore(caller_client(destination, "dynamodb"), settings.state_table),
        settings.destination.uri,
    )
    table = _table_sink(settings, destination, settings.change_index_table)
    return ChangeIndex(table, chain, run_id)


def build_sink(settings: Settings, destination: boto3.Session, run_id: str) -> Sink:
    """The sink ``settings`` name, with clients from the caller's (AccountB) session."""
    if isinstance(settings.destination, DynamoDBDestination):
        sink = _table_sink(settings, destination, settings.destination.table_name)
        return DryRunSink(sink) if settings.dry_run else sink
    if settings.dry_run:
        return DryRunSink()
    return S3ExportSink(
        caller_client(destination, "s3"),
        settings.destination.bucket,
        settings.destination.prefix,
        export_id=run_id,
        table_arn=settings.source_table_arn,
        sse_kms_key_arn=settings.destination_kms_key_arn,
        max_file_bytes=settings.s3_file_max_bytes,
        segment=settings.segment or 0,
        latest_pointer=True,
        index=_change_index(settings, destination, run_id),
        full_snapshot_every=settings.full_snapshot_every,
        force_full=settings.full_copy,
    )
