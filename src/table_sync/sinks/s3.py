"""Destination ``s3://<bucket>/<prefix>``: an export in the layout of DynamoDB's own Export to S3
(DYNAMODB_JSON), file for file (export_layout.py has the files and their fields).

DynamoDB's Import from S3 loads a full export's ``data/`` as it is (DYNAMODB_JSON, GZIP), and AWS
Labs' bulk executor ``load-export`` loads any export of the chain. Every object is written with
server-side encryption: SSE-KMS when a key is configured, else SSE-S3 (AES256). A data file is
closed at the first page boundary after it holds ``max_file_bytes`` of uncompressed JSON; only
that one file is held in memory, compressed. A data file's name is a hash of the run, segment
and sequence, so a page repeated after a crash rewrites the same object rather than adding a
duplicate; each closed file is a checkpoint.

A checkpoint keeps the closed files (their manifest entries and uncompressed sizes), so the
export's manifests, item count and ``billedSizeBytes`` cover the whole run: every invocation
and every segment.

With a change index (CHANGE_INDEX_TABLE, see change_index.py) a run writes either a full
snapshot, as above, or an incremental export in the layout of DynamoDB's own (``exportType``
INCREMENTAL_EXPORT, view NEW_IMAGE, data files in the shared ``AWSDynamoDB/data/``): only the
items whose digest differs from the one last exported, one line each, ``{"Metadata":
{"WriteTimestampMicros": ...}, "Keys": ..., "NewImage": ...}``, and a line with ``Keys`` only
for each key the source no longer holds (written by the finalize, once every segment's puts
are: a run of one segment writes them after its last puts, in the same file, as DynamoDB
mixes them; a parallel run's segments have written their files by then). The window runs from the previous export's time to the run's start, in whole minutes
(``exportFromTime`` <= ``exportToTime`` <= ``startTime``). A scan cannot know when an item was
written, only that it changed since the last export: every line's ``WriteTimestampMicros`` is
the window's start, so each falls inside the window and a loader that orders lines by it
applies the exports in their chain's order. Loading the last full snapshot, then each
incremental export of the chain in order (``previousExportId`` names the one before), gives the
source as the last export read it.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from table_sync.aws.errors import translated
from table_sync.errors import DestinationError
from table_sync.items import Item, key_of, to_json_item
from table_sync.observability import logger
from table_sync.sinks.base import Finalized, SinkState
from table_sync.sinks.change_index import ChangeIndex, ExportPlan
from table_sync.sinks.export_layout import (
    MANIFEST_FIELDS,
    compact,
    data_file_name,
    full_summary,
    incremental_summary,
    iso,
    md5_base64,
    micros,
    whole_minute,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from table_sync.source_keys import SourceKeys


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
        index: ChangeIndex | None = None,
        full_snapshot_every: int = 1,
        force_full: bool = False,
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
        self._index = index
        self._full_snapshot_every = full_snapshot_every
        self._force_full = force_full
        self.plan = ExportPlan()

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.base}/"

    @property
    def data_prefix(self) -> str:
        """Where this export's data files go: a full export's own ``data/``; an incremental
        export's, like DynamoDB's, in the ``AWSDynamoDB/data/`` its chain shares."""
        if self.plan.incremental:
            return "/".join(p for p in (self._prefix, "AWSDynamoDB", "data") if p) + "/"
        return f"{self.base}/data/"

    def prepare(self) -> None:
        if self._index is not None:  # first: a change index refused means nothing is written
            self._index.prepare()
            self.key_attributes = self._index.key_attributes
        # The export's first object; writing it also proves the bucket and permissions.
        self._put("_started", b"", "application/octet-stream")

    @property
    def committed(self) -> bool:
        """Whether no item is buffered in a data file not yet written."""
        return self._gzip is None

    def state(self) -> dict[str, Any]:
        return {"files": list(self._files), "export": self.plan.to_state()}

    def resume(self, state: SinkState) -> None:
        """Resume after a checkpoint: these files are written; the next one follows them. The
        run's export plan is the checkpoint's, or, at the run's first step, made now."""
        self._files = list(state.get("files", []))
        if "export" in state:
            self.plan = ExportPlan.from_state(dict(state["export"]))
        elif self._index is not None:
            self.plan = self._index.chain.plan(
                full_every=self._full_snapshot_every, force_full=self._force_full
            )
            logger.info(
                "export planned",
                extra={"export_type": self.plan.export_type, "previous": self.plan.previous},
            )

    def flush(self) -> None:
        self._flush()

    def digests(self, keys: Sequence[Item]) -> list[bytes | None]:
        """An incremental export's: the digests of the items as last exported; a full
        snapshot copies every item."""
        if self._index is None or not self.plan.incremental:
            return [None] * len(keys)
        return self._index.digests(keys, since=self.plan.full_seq)

    def write(self, items: Sequence[Item], digests: Sequence[bytes] | None = None) -> int:
        """Add the items to the export's data file (and to the change index). Returns the
        change index's write units: S3 bills requests and storage, not write units."""
        self._write_lines(self._line(item) for item in items)
        units = 0
        if self._index is not None and digests is not None:
            units = self._index.record(items, digests)
        if self._file_bytes >= self._max_file_bytes:
            self._flush()
        return units

    def remove(self, keys: Sequence[Item]) -> int:
        """An incremental export records the keys as deleted (a delete line each, and a
        tombstone in the change index); a full snapshot does not hold them. Returns the change
        index's write units."""
        if self._index is None or not self.plan.incremental:
            return 0
        self._write_lines({**self._metadata(), "Keys": to_json_item(key)} for key in keys)
        units = self._index.forget(keys)
        if self._file_bytes >= self._max_file_bytes:
            self._flush()
        return units

    def _line(self, item: Item) -> dict[str, Any]:
        if not self.plan.incremental:
            return {"Item": to_json_item(item)}
        return {
            **self._metadata(),
            "Keys": to_json_item(key_of(item, self.key_attributes)),
            "NewImage": to_json_item(item),
        }

    def _metadata(self) -> dict[str, Any]:
        """A line's Metadata: the window's start (see the module's docstring)."""
        stamp = micros(self.plan.window_start)
        return {"Metadata": {"WriteTimestampMicros": {"N": str(stamp)}}}

    def _window(self, started_at: datetime) -> tuple[datetime, datetime]:
        """An incremental export's exportFromTime and exportToTime (this run's start, in whole
        minutes)."""
        start = self.plan.window_start
        return start, max(start, whole_minute(started_at))

    def _write_lines(self, lines: Iterable[dict[str, Any]]) -> None:
        for entry in lines:
            line = json.dumps(entry, ensure_ascii=False, separators=(",", ":"))
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
        """Make the export complete from every segment's files: with a change index, the keys
        the source no longer holds (delete lines in an incremental export), then the manifests
        (summary last), the chain of exports, and the ``latest`` pointer. ``states`` are the
        checkpoints' (taken after ``flush``)."""
        plans = {json.dumps(state.get("export", {}), sort_keys=True) for state in states}
        if len(plans) > 1:
            raise DestinationError(
                f"run {self.export_id}: its segments planned different exports; start a new run"
            )
        if states and "export" in states[0]:
            self.plan = ExportPlan.from_state(dict(states[0]["export"]))
        chain = self._index.chain if self._index is not None else None
        done = chain.completed(self.export_id) if chain is not None else None
        if chain is not None and done is not None:
            # A repeated finalize (or one that crashed after its chain record): the export and
            # its deletions stand; the pointer is written again while it heads the chain.
            logger.info("export already complete", extra={"export_id": self.export_id})
            head = chain.head()
            if head is not None and head.latest == self.export_id:
                self._write_pointer(done[0], finished_at)
            return Finalized(items_swept=done[1])
        if chain is not None:
            chain.check(self.export_id, self.plan)
        deleted = 0
        # From here, the finalize's own files: the last data file a run of one segment left
        # unwritten, with the delete lines after its puts (as DynamoDB mixes them).
        self._files = []
        if self._index is not None and source is not None:
            deleted = self._index.sweep(source, self._deleted)
        self._flush(name="final")
        files = [f for state in states for f in state.get("files", [])] + self._files
        if not files:  # DynamoDB lists an empty data file in an export with nothing to hold
            self._flush(name="empty", empty=True)
            files = self._files
        self._write_manifests(files, started_at=started_at, finished_at=finished_at)
        items = sum(int(f["itemCount"]) for f in files)
        if chain is not None:
            # The time the next incremental export's window starts from.
            until = self._window(started_at)[1] if self.plan.incremental else started_at
            chain.record(self.export_id, self.plan, iso(until), items=items, swept=deleted)
        self._write_pointer(items, finished_at)
        return Finalized(items_swept=deleted)

    def _deleted(self, keys: list[Item]) -> None:
        """Keys the source no longer holds: an incremental export's delete lines (a full
        snapshot simply does not hold them)."""
        if self.plan.incremental:
            self._write_lines({**self._metadata(), "Keys": to_json_item(key)} for key in keys)
            if self._file_bytes >= self._max_file_bytes:
                self._flush(name="final")

    def _write_manifests(
        self, files: list[dict[str, Any]], *, started_at: datetime, finished_at: datetime
    ) -> None:
        manifest = [{k: f[k] for k in MANIFEST_FIELDS} for f in files]
        files_body = "".join(
            json.dumps(entry, separators=(",", ":")) + "\n" for entry in manifest
        ).encode("utf-8")
        self._put("manifest-files.json", files_body, "application/json")
        self._put("manifest-files.md5", md5_base64(files_body).encode(), "text/plain")
        summary = self._summary(files, started_at=started_at, finished_at=finished_at)
        summary_body = compact(summary)
        # Written last: a reader that finds manifest-summary.json finds a complete snapshot.
        self._put("manifest-summary.json", summary_body, "application/json")
        self._put("manifest-summary.md5", md5_base64(summary_body).encode(), "text/plain")

    def _summary(
        self, files: list[dict[str, Any]], *, started_at: datetime, finished_at: datetime
    ) -> dict[str, Any]:
        """The manifest summary, as DynamoDB writes it. ``exportArn`` and ``tableId`` are null:
        no DynamoDB export has this ARN, and the source role may not call DescribeTable."""
        common: dict[str, Any] = {
            "exportArn": None,
            "startTime": iso(started_at),
            "endTime": iso(finished_at),
            "tableArn": self._table_arn,
            "tableId": None,
            "s3Bucket": self.bucket,
            "s3Prefix": self._prefix or None,
            "s3SseAlgorithm": "KMS" if self._sse_kms_key_arn else "AES256",
            "s3SseKmsKeyId": self._sse_kms_key_arn,
            "manifestFilesS3Key": f"{self.base}/manifest-files.json",
            "billedSizeBytes": sum(int(f.get("bytes", 0)) for f in files),
            "itemCount": sum(int(f["itemCount"]) for f in files),
            "outputFormat": "DYNAMODB_JSON",
        }
        incremental = self.plan.incremental
        if self._index is not None:
            # The chain: a loader applies this export onto the one it names.
            common["previousExportId"] = self.plan.previous if incremental else None
            common["fullExportId"] = self.plan.full if incremental else self.export_id
        if incremental:
            return incremental_summary(
                common, window=self._window(started_at), output_view="NEW_IMAGE"
            )
        return full_summary(common, export_time=started_at)

    def _write_pointer(self, item_count: int, finished_at: datetime) -> None:
        if not self._latest_pointer:
            return
        # One PutObject replaces the pointer atomically, and only now that the export it names
        # is complete: a reader following it never sees a half-written export.
        pointer = {
            "exportId": self.export_id,
            "exportType": self.plan.export_type,
            "previousExportId": self.plan.previous if self.plan.incremental else None,
            "location": self.location,
            "manifestSummaryKey": f"{self.base}/manifest-summary.json",
            "itemCount": item_count,
            "endTime": iso(finished_at),
        }
        key = "/".join(p for p in (self._prefix, "latest.json") if p)
        self._put_key(key, json.dumps(pointer, indent=2).encode(), "application/json")

    def _flush(self, name: str | None = None, *, empty: bool = False) -> None:
        """Close the data file (``empty``: one with no lines) and write it, named for the
        segment (or the finalize's ``name``) and its place."""
        if self._gzip is None and not empty:
            return
        if self._gzip is None:
            self._gzip = gzip.GzipFile(fileobj=self._buffer, mode="wb", mtime=0)
        self._gzip.close()
        body = self._buffer.getvalue()
        part = f"{name or f'{self._segment:05d}'}-{len(self._files):06d}"
        key = f"{self.data_prefix}{data_file_name(self.export_id, part)}.json.gz"
        response = self._put_key(key, body, "application/gzip")
        self._files.append(
            {
                "itemCount": self._file_items,
                "md5Checksum": md5_base64(body),
                "etag": response.get("ETag", "").strip('"'),
                "dataFileS3Key": key,
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
        with translated(
            DestinationError,
            f"PutObject s3://{self.bucket}/{key}",
            hints={
                "AccessDenied": f" (the bucket {self.bucket} does not exist, or these credentials "
                "may not write under this prefix: check DESTINATION, and the caller's "
                "s3:PutObject on it)",
                "NoSuchBucket": f" (there is no bucket {self.bucket}: check DESTINATION)",
            },
        ):
            return dict(
                self._client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=body,
                    ContentType=content_type,
                    ContentMD5=md5_base64(body),
                    **self._sse,
                )
            )
