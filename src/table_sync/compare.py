"""Read a copy back (a DynamoDB table or an S3 export) and compare it with the source, naming
keys, never values: `table-sync verify`, the demo's check and the tests all use this."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from table_sync.items import Item, from_json_item, to_json_item
from table_sync.sinks.dynamodb import BOOKKEEPING_ATTRIBUTES


def read_table(client: Any, table: str, key: str = "pk") -> dict[str, Item]:
    items: dict[str, Item] = {}
    for page in client.get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            items[next(iter(item[key].values()))] = item
    return items


@dataclass
class S3Export:
    summary: dict[str, Any]
    manifest: list[dict[str, Any]]
    items: dict[str, Item]
    object_keys: list[str]


def read_export(client: Any, bucket: str, location: str, key: str = "pk") -> S3Export:
    """Read an export written by the S3 sink, checking every data file's MD5 against the manifest."""
    base = location.removeprefix(f"s3://{bucket}/").rstrip("/")
    summary = json.loads(
        client.get_object(Bucket=bucket, Key=f"{base}/manifest-summary.json")["Body"].read()
    )
    manifest_body = client.get_object(Bucket=bucket, Key=summary["manifestFilesS3Key"])[
        "Body"
    ].read()
    manifest = [json.loads(line) for line in manifest_body.decode().splitlines() if line]
    items: dict[str, Item] = {}
    for entry in manifest:
        body = client.get_object(Bucket=bucket, Key=entry["dataFileS3Key"])["Body"].read()
        digest = base64.b64encode(hashlib.md5(body).digest()).decode()  # noqa: S324
        if digest != entry["md5Checksum"]:
            raise ValueError(f"{entry['dataFileS3Key']}: MD5 does not match manifest-files.json")
        lines = gzip.decompress(body).decode("utf-8").splitlines()
        if len(lines) != entry["itemCount"]:
            raise ValueError(
                f"{entry['dataFileS3Key']}: {len(lines)} lines, manifest says {entry['itemCount']}"
            )
        for line in lines:
            item = from_json_item(json.loads(line)["Item"])
            items[next(iter(item[key].values()))] = item
    keys = [
        obj["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=base + "/"
        )
        for obj in page.get("Contents", [])
    ]
    return S3Export(summary, manifest, items, keys)


def differences(expected: Mapping[str, Item], actual: Mapping[str, Item]) -> list[str]:
    """What differs between two copies, by key and attribute name only."""
    problems = [f"missing {k}" for k in sorted(expected.keys() - actual.keys())]
    problems += [f"unexpected {k}" for k in sorted(actual.keys() - expected.keys())]
    for k in sorted(expected.keys() & actual.keys()):
        want, got = expected[k], actual[k]
        for name in sorted((want.keys() | got.keys()) - BOOKKEEPING_ATTRIBUTES):
            if _normalise(want.get(name)) != _normalise(got.get(name)):
                problems.append(f"{k}: attribute {name!r} differs")
    return problems


def _normalise(value: Any) -> Any:
    """Sets compare as sets (DynamoDB does not keep their order)."""
    if not isinstance(value, dict):
        return value
    ((kind, raw),) = value.items()
    if kind in ("SS", "NS", "BS"):
        return {kind: sorted(raw)}
    if kind == "M":
        return {"M": {k: _normalise(v) for k, v in raw.items()}}
    if kind == "L":
        return {"L": [_normalise(v) for v in raw]}
    return value


def digest(item: Item) -> str:
    """A SHA-256 of an item's canonical DynamoDB JSON (sets sorted): equal items, equal digests."""
    canonical = json.dumps(
        to_json_item(_normalise_item(item)), sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _normalise_item(item: Item) -> Item:
    return {
        name: _normalise(value)
        for name, value in item.items()
        if name not in BOOKKEEPING_ATTRIBUTES
    }


def latest_export(client: Any, bucket: str, prefix: str) -> str | None:
    """The newest complete export (one with manifest-summary.json) under ``prefix``."""
    base = "/".join(p for p in (prefix.strip("/"), "AWSDynamoDB") if p) + "/"
    complete = [
        obj["Key"].rsplit("/", 1)[0]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=base)
        for obj in page.get("Contents", [])
        if obj["Key"].endswith("/manifest-summary.json")
    ]
    return f"s3://{bucket}/{max(complete)}/" if complete else None


@dataclass
class Comparison:
    source_items: int
    destination_items: int
    missing: list[str]
    unexpected: list[str]
    different: list[str]
    undecryptable: list[str]

    @property
    def matches(self) -> bool:
        return not (self.missing or self.unexpected or self.different or self.undecryptable)


def compare_digests(
    source: Iterable[tuple[str, str | None]], destination: Iterator[tuple[str, str]]
) -> Comparison:
    """``source`` yields (key, digest or None when undecryptable); ``destination`` (key, digest)."""
    wanted: dict[str, str | None] = dict(source)
    got: dict[str, str] = dict(destination)
    undecryptable = sorted(k for k, v in wanted.items() if v is None)
    return Comparison(
        source_items=len(wanted),
        destination_items=len(got),
        missing=sorted(k for k, v in wanted.items() if v is not None and k not in got),
        unexpected=sorted(k for k in got if k not in wanted),
        different=sorted(
            k for k, v in wanted.items() if v is not None and k in got and got[k] != v
        ),
        undecryptable=undecryptable,
    )
