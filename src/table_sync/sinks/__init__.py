"""Destinations in AccountB, one module each, behind one interface (:mod:`.base`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from table_sync.aws.clients import caller_client
from table_sync.models import DynamoDBDestination, Settings
from table_sync.sinks.base import Finalized, Sink, SinkState
from table_sync.sinks.dry_run import DryRunSink
from table_sync.sinks.dynamodb import DynamoDBSink
from table_sync.sinks.s3 import S3ExportSink

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


def build_sink(settings: Settings, destination: boto3.Session, run_id: str) -> Sink:
    """The sink ``settings`` name, with clients from the caller's (AccountB) session."""
    if isinstance(settings.destination, DynamoDBDestination):
        sink = DynamoDBSink(
            caller_client(destination, "dynamodb"),
            settings.destination.table_name,
            max_attempts=settings.write_max_attempts,
            backoff_base=settings.write_backoff_base,
            backoff_cap=settings.write_backoff_cap,
            concurrency=settings.write_concurrency,
        )
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
    )
