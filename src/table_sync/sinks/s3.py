"""Destination ``s3://<bucket>/<prefix>``: the layout of DynamoDB's Export to S3 (DYNAMODB_JSON).

    <prefix>/AWSDynamoDB/<run-id>/_started                      first, empty
    <prefix>/AWSDynamoDB/<run-id>/data/<random>.json.gz         one {"Item": {...}} per line
    <prefix>/AWSDynamoDB/<run-id>/manifest-files.json           JSON Lines, one per data file
    <prefix>/AWSDynamoDB/<run-id>/manifest-files.checksum
    <prefix>/AWSDynamoDB/<run-id>/manifest-summary.json         last: its presence means complete
    <prefix>/AWSDynamoDB/<run-id>/manifest-summary.checksum

DynamoDB's Import from S3 loads ``.../data/`` as it is (DYNAMODB_JSON, GZIP). Every object is
written with server-side encryption: SSE-KMS when a key is configured, else SSE-S3 (AES256).
A data file is closed at the first page boundary after it holds ``max_file_bytes`` of
uncompressed JSON; only that one file is held in memory, compressed. Data files are named by
segment and sequence (``data/<segment>-<seq>.json.gz``), so a page repeated after a crash
rewrites the same object rather than adding a duplicate; each closed file is a checkpoint.

A checkpoint keeps the closed files (their manifest entries and uncompressed sizes), so the
export's manifests, item count and ``billedSizeBytes`` cover the whole run: every invocation
and every segment.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from table_sync.aws.errors import translated
from table_sync.errors import DestinationError
from table_sync.items import Item, to_json_item
from table_sync.sinks.base import Finalized, SinkState

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from table_sync.source_keys import SourceKeys

EXPORT_FORMAT_VERSION = "2020-06-30"
# The fields of a manifest-files.json line; a checkpoint's file records add "bytes".
MANIFEST_FIELDS = ("itemCount", "md5Checksum", "etag", "dataFileS3Key")


def sse_arguments(kms_key_arn: str | None) -> dict[str, Any]:
    """PutObject's server-side encryption: SSE-KMS under ``kms_key_arn`` (with an S3 bucket key,
    fewer KMS requests), else SSE-S3."""
    if kms_key_arn:
        return {
            "ServerSideEncryption": "aws:kms",
            "SSEKMSKeyId": kms_key_arn,
            "BucketKeyEnabled": True,
        }
    return {"ServerSideEncryption": "AES256"}


class S3ExportSink:
    def __init__(
        self,
        client: S3Client,
        bucket: str,
        prefix: str,
        *,
        export_id: str,
        table_arn: str,
        sse_kms_key_arn: str | None = None,
        max_file_bytes: int = 64 * 1024 * 1024,
        segment: int = 0,
        latest_pointer: bool = False,
    ) -> None:
        self._client = client
        self.bucket = bucket
        self.export_id = export_id
        self._table_arn = table_arn
        self._prefix = prefix.strip("/")
        self.base = "/".join(p for p in (self._prefix, "AWSDynamoDB", export_id) if p)
        self._sse = sse_arguments(sse_kms_key_arn)
        self._sse_kms_key_arn = sse_kms_key_arn
        self._max_file_bytes = max_file_bytes
        self._segment = segment
        self._latest_pointer = latest_pointer
        self.key_attributes: tuple[str, ...] = ()
        # The data files closed so far: manifest entries plus their uncompressed "bytes".
        self._files: list[dict[str, Any]] = []
        self._buffer = io.BytesIO()
        self._gzip: gzip.GzipFile | None = None
        self._file_items = 0
        self._file_bytes = 0

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.base}/"

    @property
    def data_prefix(self) -> str:
        return f"{self.base}/data/"

    def prepare(self) -> None:
        # The export's first object; writing it also proves the bucket and permissions.
        self._put("_started", b"", "application/octet-stream")

    @property
    def committed(self) -> bool:
        """Whether no item is buffered in a data file not yet written."""
        return self._gzip is None

    def state(self) -> dict[str, Any]:
        return {"files": list(self._files)}

    def resume(self, state: SinkState) -> None:
        """Resume after a checkpoint: these files are written; the next one follows them."""
        self._files = list(state.get("files", []))

    def flush(self) -> None:
        self._flush()

    def digests(self, keys: Sequence[Item]) -> list[bytes | None]:
        return [None] * len(keys)  # no digests kept: every item is copied

    def write(self, items: Sequence[Item], digests: Sequence[bytes] | None = None) -> int:
        self._write_items(items)
        if self._file_bytes >= self._max_file_bytes:
            self._flush()
        return 0  # S3 bills requests and storage, not write units

    def _write_items(self, items: Sequence[Item]) -> None:
        for item in items:
            line = json.dumps(
                {"Item": to_json_item(item)}, ensure_ascii=False, separators=(",", ":")
            )
            data = line.encode("utf-8") + b"\n"
            if self._gzip is None:
                self._gzip = gzip.GzipFile(
                    fileobj=self._buffer, mode="wb", compresslevel=6, mtime=0
                )
            self._gzip.write(data)
            self._file_items += 1
            self._file_bytes += len(data)

    def finalize(
        self,
        states: Sequence[SinkState],
        *,
        started_at: datetime,
        finished_at: datetime,
        source: SourceKeys | None = None,
    ) -> Finalized:
        """Make the export complete from every segment's files: the manifests (summary last),
        then the ``latest`` pointer. ``states`` are the checkpoints' (taken after ``flush``)."""
        files = sorted(
            (f for state in states for f in state.get("files", [])),
            key=lambda f: str(f["dataFileS3Key"]),
        )
        self._write_manifests(files, started_at=started_at, finished_at=finished_at)
        return Finalized()

    def _write_manifests(
        self, files: list[dict[str, Any]], *, started_at: datetime, finished_at: datetime
    ) -> None:
        item_count = sum(int(f["itemCount"]) for f in files)
        manifest = [{k: f[k] for k in MANIFEST_FIELDS} for f in files]
        files_body = "".join(
            json.dumps(entry, separators=(",", ":")) + "\n" for entry in manifest
        ).encode("utf-8")
        self._put("manifest-files.json", files_body, "application/json")
        self._put("manifest-files.checksum", _md5_hex(files_body).encode(), "text/plain")
        summary = {
            "version": EXPORT_FORMAT_VERSION,
            "exportArn": None,
            "startTime": _iso(started_at),
            "endTime": _iso(finished_at),
            "exportTime": _iso(started_at),
            "tableArn": self._table_arn,
            "tableId": None,
            "s3Bucket": self.bucket,
            "s3Prefix": self._prefix or None,
            "s3SseAlgorithm": "KMS" if self._sse_kms_key_arn else "AES256",
            "s3SseKmsKeyId": self._sse_kms_key_arn,
            "manifestFilesS3Key": f"{self.base}/manifest-files.json",
            "billedSizeBytes": sum(int(f.get("bytes", 0)) for f in files),
            "itemCount": item_count,
            "outputFormat": "DYNAMODB_JSON",
            "exportType": "FULL_EXPORT",
            "exportedBy": "table-sync",
        }
        summary_body = json.dumps(summary, indent=2).encode("utf-8")
        # Written last: a reader that finds manifest-summary.json finds a complete snapshot.
        self._put("manifest-summary.json", summary_body, "application/json")
        self._put("manifest-summary.checksum", _md5_hex(summary_body).encode(), "text/plain")
        if self._latest_pointer:
            # One PutObject replaces the pointer atomically, and only now that the snapshot it
            # names is complete: a reader following it never sees a half-written export.
            pointer = {
                "exportId": self.export_id,
                "location": self.location,
                "manifestSummaryKey": f"{self.base}/manifest-summary.json",
                "itemCount": item_count,
                "endTime": _iso(finished_at),
            }
            key = "/".join(p for p in (self._prefix, "latest.json") if p)
            self._put_key(key, json.dumps(pointer, indent=2).encode(), "application/json")

    def _flush(self) -> None:
        if self._gzip is None:
            return
        self._gzip.close()
        body = self._buffer.getvalue()
        key = f"data/{self._segment:05d}-{len(self._files):06d}.json.gz"
        response = self._put(key, body, "application/gzip")
        self._files.append(
            {
                "itemCount": self._file_items,
                "md5Checksum": _md5_base64(body),
                "etag": response.get("ETag", "").strip('"'),
                "dataFileS3Key": f"{self.base}/{key}",
                "bytes": self._file_bytes,
            }
        )
        self._buffer = io.BytesIO()
        self._gzip = None
        self._file_items = 0
        self._file_bytes = 0

    def _put(self, name: str, body: bytes, content_type: str) -> dict[str, Any]:
        return self._put_key(f"{self.base}/{name}", body, content_type)

    def _put_key(self, key: str, body: bytes, content_type: str) -> dict[str, Any]:
        with translated(DestinationError, f"PutObject s3://{self.bucket}/{key}"):
            return dict(
                self._client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=body,
                    ContentType=content_type,
                    ContentMD5=_md5_base64(body),
                    **self._sse,
                )
            )


def _md5_base64(body: bytes) -> str:
    return base64.b64encode(hashlib.md5(body).digest()).decode()  # noqa: S324 - S3's Content-MD5


def _md5_hex(body: bytes) -> str:
    return hashlib.md5(body).hexdigest()  # noqa: S324 - a checksum, as DynamoDB's export writes


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
