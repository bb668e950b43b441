"""The files of a DynamoDB Export to S3 (DYNAMODB_JSON), as DynamoDB itself writes them: names,
encodings, the manifest summary's fields and their order. What a real export holds was read from
one (a full export and two incremental exports made by DynamoDB) and from AWS Labs' reader of
exports (the bulk executor's ``load-export``), which refuses an export that differs in these.

    <prefix>/AWSDynamoDB/<export-id>/_started                  first, empty
    <prefix>/AWSDynamoDB/<export-id>/data/<name>.json.gz       a full export's data files
    <prefix>/AWSDynamoDB/data/<name>.json.gz                   an incremental export's (shared)
    <prefix>/AWSDynamoDB/<export-id>/manifest-files.json       JSON Lines, one per data file
    <prefix>/AWSDynamoDB/<export-id>/manifest-files.md5        base64 MD5 of the file above
    <prefix>/AWSDynamoDB/<export-id>/manifest-summary.json     one compact line, written last
    <prefix>/AWSDynamoDB/<export-id>/manifest-summary.md5

``<name>`` is 26 lowercase base32 characters. DynamoDB's are random; table-sync's are a hash of
the export, the segment and the file's place in it, so a page written again after a crash
rewrites the same object instead of leaving a second copy beside it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

EXPORT_FORMAT_VERSION = "2020-06-30"
INCREMENTAL_FORMAT_VERSION = "2023-08-01"
# The fields of a manifest-files.json line; a checkpoint's file records add "bytes".
MANIFEST_FIELDS = ("itemCount", "md5Checksum", "etag", "dataFileS3Key")
# Fields a real export lacks, kept because table-sync's chain needs them (loaders ignore them).
CHAIN_FIELDS = ("previousExportId", "fullExportId")


def data_file_name(export_id: str, part: str) -> str:
    """26 lowercase base32 characters, as DynamoDB names data files: here the hash of the export
    and the file's ``part`` (segment and sequence), the same on every attempt."""
    digest = hashlib.blake2b(f"{export_id}/{part}".encode(), digest_size=16).digest()
    return base64.b32encode(digest).decode().rstrip("=").lower()


def md5_base64(body: bytes) -> str:
    """The base64 MD5 of ``body``: S3's Content-MD5, a manifest's ``md5Checksum`` and the text
    of a ``.md5`` file."""
    return base64.b64encode(hashlib.md5(body).digest()).decode()  # noqa: S324 - as S3 and DynamoDB


def iso(moment: datetime) -> str:
    """A time as an export's summary writes it: UTC, milliseconds, ``Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def whole_minute(moment: datetime) -> datetime:
    """An incremental export's window bounds are whole minutes."""
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def micros(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def compact(document: dict[str, Any]) -> bytes:
    """A manifest summary's body: one JSON line, no spaces, no newline."""
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


def full_summary(common: dict[str, Any], *, export_time: datetime) -> dict[str, Any]:
    """A full export's manifest summary, in DynamoDB's field order (no ``exportType``: absent
    means FULL_EXPORT)."""
    return _ordered(
        common,
        version=EXPORT_FORMAT_VERSION,
        times={"exportTime": iso(export_time)},
        tail={},
    )


def incremental_summary(
    common: dict[str, Any], *, window: tuple[datetime, datetime], output_view: str
) -> dict[str, Any]:
    """An incremental export's manifest summary, in DynamoDB's field order: the window instead
    of ``exportTime``, then ``outputView`` and ``exportType`` last."""
    return _ordered(
        common,
        version=INCREMENTAL_FORMAT_VERSION,
        times={"exportFromTime": iso(window[0]), "exportToTime": iso(window[1])},
        tail={"outputView": output_view, "exportType": "INCREMENTAL_EXPORT"},
    )


def _ordered(
    common: dict[str, Any], *, version: str, times: dict[str, Any], tail: dict[str, Any]
) -> dict[str, Any]:
    head = ("exportArn", "startTime", "endTime", "tableArn", "tableId")
    body = (
        "s3Bucket",
        "s3Prefix",
        "s3SseAlgorithm",
        "s3SseKmsKeyId",
        "manifestFilesS3Key",
        "billedSizeBytes",
        "itemCount",
        "outputFormat",
    )
    summary: dict[str, Any] = {"version": version}
    summary.update((name, common[name]) for name in head)
    summary.update(times)
    summary.update((name, common[name]) for name in body)
    summary.update(tail)
    summary.update((name, common[name]) for name in CHAIN_FIELDS if name in common)
    return summary
