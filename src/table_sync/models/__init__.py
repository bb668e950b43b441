"""Typed models: settings, invocation events and the run summary."""

from table_sync.models.destination import Destination, DynamoDBDestination, S3Destination
from table_sync.models.events import Invocation, parse_event
from table_sync.models.settings import Settings
from table_sync.models.summary import SkippedRun, SyncSummary

__all__ = [
    "Destination",
    "DynamoDBDestination",
    "Invocation",
    "S3Destination",
    "Settings",
    "SkippedRun",
    "SyncSummary",
    "parse_event",
]
