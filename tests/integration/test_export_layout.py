"""An S3 copy's chain of exports is in the layout of a real DynamoDB export, file for file, and
loads with what AWS Labs' reader of exports requires (issue 26).

The expected structure is written here from facts read in a public sample of real exports (a
full export and two incremental exports made by DynamoDB: gurre/ddb-pitr, ``s3exportdata/``)
and from the checks of AWS Labs' bulk executor ``load-export``
(awslabs/amazon-dynamodb-tools, ``tools/bulk_executor/.../shared/export/``). No third party's
files or code are used: ``aws_labs_load`` is this test's own, built from the list of what that
reader requires. The chain is a full export and three incremental ones (one of them empty),
with updates, inserts and deletes between them, on a table with a sort key whose keys and
values hold Unicode line separators."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import boto3
import pytest

from table_sync.items import Item, from_json_item
from table_sync.models import Settings
from table_sync.runs import new_run_id
from table_sync.verify import verify_copy
from table_sync_dev.local.seed import EmbeddedAws, create_table, key_schema, put_items
from tests.integration.conftest import drive_run, unique_name

SCHEMA = key_schema(("pk", "S"), ("sk", "S"))
KEYS = (("pk", "S"), ("sk", "S"))
PREFIX = "exports/sorted"
# Line and paragraph separators, NEL and CR: str.splitlines() breaks at each of them.
SEPARATORS = "\u2028\u2029\u0085\r"

# A real export's manifest summary, field by field in the order DynamoDB writes them.
FULL_FIELDS = [
    "version",
    "exportArn",
    "startTime",
    "endTime",
    "tableArn",
    "tableId",
    "exportTime",
    "s3Bucket",
    "s3Prefix",
    "s3SseAlgorithm",
    "s3SseKmsKeyId",
    "manifestFilesS3Key",
    "billedSizeBytes",
    "itemCount",
    "outputFormat",
]
INCREMENTAL_FIELDS = [
    *FULL_FIELDS[:6],
    "exportFromTime",
    "exportToTime",
    *FULL_FIELDS[7:],
    "outputView",
    "exportType",
]
# What table-sync adds after them, for its chain (a loader ignores them).
CHAIN_FIELDS = {"previousExportId", "fullExportId"}
MANIFEST_ENTRY_FIELDS = ["itemCount", "md5Checksum", "etag", "dataFileS3Key"]
EXPORT_ID = re.compile(r"^\d{14}-[0-9a-f]{8}$")
DATA_FILE = re.compile(r"^[a-z2-7]{26}\.json\.gz$")
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
MD5 = re.compile(r"^[A-Za-z0-9+/]{22}==$")


def _md5(body: bytes) -> str:
    return base64.b64encode(hashlib.md5(body).digest()).decode()  # noqa: S324


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _micros(text: str) -> int:
    moment = _time(text)
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


@dataclass
class Chain:
    aws: EmbeddedAws
    s3: Any
    exports: list[str]  # export ids, oldest first
    expected: dict[tuple[str, str], Item]
    settings: Settings

    def get(self, key: str) -> bytes:
        return bytes(self.s3.get_object(Bucket=self.aws.bucket, Key=key)["Body"].read())

    def summary(self, export_id: str) -> dict[str, Any]:
        return dict(json.loads(self.get(f"{PREFIX}/AWSDynamoDB/{export_id}/manifest-summary.json")))


def _item(kms: Any, key_arn: str, pk: str, sk: str, n: int, tag: str) -> tuple[Item, Item]:
    """An item as stored (ssn a KMS ciphertext) and its expected copy."""
    plaintext = f"{n:03d}{SEPARATORS}{tag}"
    blob = kms.encrypt(KeyId=key_arn, Plaintext=plaintext.encode())["CiphertextBlob"]
    common = {"pk": {"S": pk}, "sk": {"S": sk}, "note": {"S": f"{tag}{SEPARATORS}\n{n}"}}
    return {**common, "ssn": {"B": blob}}, {**common, "ssn": {"S": plaintext}}


@pytest.fixture
def chain(aws: EmbeddedAws, function_env: Any, monkeypatch: pytest.MonkeyPatch) -> Chain:
    """Four runs into s3:// with a change index: a full export (two segments), then changes
    and an incremental export, then none and an empty one, then changes and a third (two
    segments)."""
    name = unique_name()
    view = replace(aws, source_table=f"sorted-{name}")
    ddb_a, kms = aws.account_a().client("dynamodb"), aws.account_a().client("kms")
    view.source_table_arn = create_table(ddb_a, view.source_table, SCHEMA)
    index = aws.named("layout-index")
    create_table(aws.account_b().client("dynamodb"), index, SCHEMA)
    env = view.settings_env(
        DESTINATION=f"s3://{aws.bucket}/{PREFIX}",
        ENCRYPTED_ATTRIBUTES="ssn",
        CHANGE_INDEX_TABLE=index,
        STATE_TABLE=aws.state_table,
        FULL_SNAPSHOT_EVERY="10",
        PAGE_SIZE="4",
    )
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    expected: dict[tuple[str, str], Item] = {}

    def put(keys: list[tuple[str, str]], tag: str) -> None:
        made = [_item(kms, aws.key_arn, pk, sk, n, tag) for n, (pk, sk) in enumerate(keys)]
        put_items(ddb_a, view.source_table, [stored for stored, _ in made])
        expected.update({(pk, sk): copy for (pk, sk), (_, copy) in zip(keys, made, strict=True)})

    def delete(keys: list[tuple[str, str]]) -> None:
        for pk, sk in keys:
            ddb_a.delete_item(TableName=view.source_table, Key={"pk": {"S": pk}, "sk": {"S": sk}})
            del expected[(pk, sk)]

    odd = [(f"line{SEPARATORS}user", f"order{s}#{o}") for o, s in enumerate(SEPARATORS)]
    put([(f"user#{u}", f"order#{o}") for u in range(3) for o in range(3)] + odd, "v1")
    exports = [new_run_id()]
    drive_run(exports[-1], 2)
    put([("user#0", "order#0"), odd[0], ("user#9", "order#0"), ("user#9", "order#1")], "v2")
    delete([("user#2", "order#2"), odd[3]])
    exports.append(new_run_id())
    drive_run(exports[-1], 1)
    exports.append(new_run_id())  # nothing changed: an empty incremental export
    drive_run(exports[-1], 1)
    put([("user#1", "order#1"), ("user#8", "order#0")], "v3")
    delete([("user#9", "order#1"), odd[1]])
    exports.append(new_run_id())
    summary, _ = drive_run(exports[-1], 2)
    assert summary["status"] == "succeeded", summary
    return Chain(view, aws.account_b().client("s3"), exports, expected, Settings.from_env(env))


def _objects(chain: Chain) -> dict[str, dict[str, Any]]:
    pages = chain.s3.get_paginator("list_objects_v2").paginate(
        Bucket=chain.aws.bucket, Prefix=f"{PREFIX}/AWSDynamoDB/"
    )
    return {
        obj["Key"].removeprefix(f"{PREFIX}/AWSDynamoDB/"): obj
        for page in pages
        for obj in page.get("Contents", [])
    }


def test_the_chain_has_a_real_exports_files_names_and_encodings(chain: Chain) -> None:
    objects = _objects(chain)
    full, *incremental = chain.exports
    manifests = {"manifest-files.json", "manifest-files.md5"}
    manifests |= {"manifest-summary.json", "manifest-summary.md5"}
    for export_id in chain.exports:
        assert EXPORT_ID.match(export_id)
        own = {k.split("/", 1)[1] for k in objects if k.startswith(f"{export_id}/")}
        data = {n for n in own if n.startswith("data/")}
        assert own - data == {"_started"} | manifests
        assert chain.get(f"{PREFIX}/AWSDynamoDB/{export_id}/_started") == b""
        # A full export's data files are its own; an incremental export's are in data/.
        assert bool(data) == (export_id == full)
        for name in ("manifest-summary", "manifest-files"):
            md5 = chain.get(f"{PREFIX}/AWSDynamoDB/{export_id}/{name}.md5")
            assert MD5.match(md5.decode())  # base64, 24 characters, no newline
            assert md5.decode() == _md5(chain.get(f"{PREFIX}/AWSDynamoDB/{export_id}/{name}.json"))
        for line in _manifest(chain, export_id):
            assert list(line) == MANIFEST_ENTRY_FIELDS
            key = line["dataFileS3Key"]
            # Relative to the bucket root, in the export's data/ or (incremental) the shared one.
            folder = f"{export_id}/data/" if export_id == full else "data/"
            assert key.startswith(f"{PREFIX}/AWSDynamoDB/{folder}")
            assert DATA_FILE.match(key.rsplit("/", 1)[1])
            body = chain.get(key)
            assert body[:2] == b"\x1f\x8b"  # gzip
            assert line["md5Checksum"] == _md5(body)
            assert line["etag"] == objects[key.split("/AWSDynamoDB/", 1)[1]]["ETag"].strip('"')
    shared = {k for k in objects if k.startswith("data/")}
    listed = {
        e["dataFileS3Key"].split("/AWSDynamoDB/", 1)[1]
        for i in incremental
        for e in _manifest(chain, i)
    }
    assert shared == listed


def _manifest(chain: Chain, export_id: str) -> list[dict[str, Any]]:
    body = chain.get(chain.summary(export_id)["manifestFilesS3Key"]).decode()
    assert body.endswith("\n")
    return [json.loads(line) for line in body.split("\n")[:-1]]


def _lines(chain: Chain, entry: dict[str, Any]) -> list[dict[str, Any]]:
    text = gzip.decompress(chain.get(entry["dataFileS3Key"])).decode("utf-8")
    return [json.loads(line) for line in text.split("\n")[:-1]]


def test_the_summaries_and_lines_are_a_real_exports(chain: Chain) -> None:
    full = chain.exports[0]
    previous_time = None
    for export_id in chain.exports:
        key = f"{PREFIX}/AWSDynamoDB/{export_id}/manifest-summary.json"
        body = chain.get(key)
        summary = json.loads(body)
        assert body == json.dumps(summary, separators=(",", ":")).encode()  # one compact line
        fields = FULL_FIELDS if export_id == full else INCREMENTAL_FIELDS
        assert list(summary)[: len(fields)] == fields
        assert set(list(summary)[len(fields) :]) <= CHAIN_FIELDS
        assert summary["version"] == ("2020-06-30" if export_id == full else "2023-08-01")
        assert summary["outputFormat"] == "DYNAMODB_JSON"
        assert summary["tableArn"] == chain.aws.source_table_arn
        assert (
            summary["manifestFilesS3Key"] == f"{PREFIX}/AWSDynamoDB/{export_id}/manifest-files.json"
        )
        assert (summary["s3Bucket"], summary["s3Prefix"]) == (chain.aws.bucket, PREFIX)
        assert summary["s3SseAlgorithm"] == "AES256"
        assert summary["s3SseKmsKeyId"] is None
        assert all(isinstance(summary[f], int) for f in ("billedSizeBytes", "itemCount"))
        assert all(
            summary[f] is None or isinstance(summary[f], str) for f in ("exportArn", "tableId")
        )
        times = [
            f
            for f in ("startTime", "endTime", "exportTime", "exportFromTime", "exportToTime")
            if f in summary
        ]
        assert all(TIME.match(summary[f]) for f in times)
        manifest = _manifest(chain, export_id)
        assert sum(e["itemCount"] for e in manifest) == summary["itemCount"]
        lines = [line for entry in manifest for line in _lines(chain, entry)]
        assert all(len(_lines(chain, e)) == e["itemCount"] for e in manifest)
        if export_id == full:
            assert all(list(line) == ["Item"] for line in lines)
            previous_time = summary["exportTime"]
            continue
        assert summary["outputView"] == "NEW_IMAGE"
        assert summary["exportType"] == "INCREMENTAL_EXPORT"
        start, end = summary["exportFromTime"], summary["exportToTime"]
        # The window: whole minutes, from the previous export's time, ending before the start.
        assert start.endswith(":00.000Z")
        assert end.endswith(":00.000Z")
        assert _time(start) == _time(previous_time).replace(second=0, microsecond=0)
        assert _time(start) <= _time(end) <= _time(summary["startTime"])
        previous_time = end
        for line in lines:
            assert list(line) in (["Metadata", "Keys", "NewImage"], ["Metadata", "Keys"])
            stamp = line["Metadata"]["WriteTimestampMicros"]["N"]
            assert re.fullmatch(r"\d{16}", stamp)
            assert _micros(start) <= int(stamp) <= _micros(end)
            assert sorted(line["Keys"]) == ["pk", "sk"]
    # A run of one segment writes its delete lines after its last puts, in one file.
    second = [_lines(chain, entry) for entry in _manifest(chain, chain.exports[1])]
    assert any({"NewImage" in line for line in lines} == {True, False} for lines in second), second
    empty = chain.summary(chain.exports[2])
    assert empty["itemCount"] == 0
    # DynamoDB lists an empty data file (itemCount 0) rather than writing an empty manifest.
    (entry,) = _manifest(chain, chain.exports[2])
    assert entry["itemCount"] == 0
    assert gzip.decompress(chain.get(entry["dataFileS3Key"])) == b""


def aws_labs_load(chain: Chain, export_id: str, table: dict[tuple[str, str], Item]) -> None:
    """Load one export onto ``table`` as the bulk executor's ``load-export`` does, refusing it
    where that reader refuses. Its requirements, in its order:

    1. ``manifest-summary.md5`` beside ``manifest-summary.json``, the base64 MD5 of it;
    2. ``tableArn`` starts ``arn:`` and contains ``:dynamodb:``;
    3. ``outputFormat`` DYNAMODB_JSON;
    4. ``exportType`` (absent: FULL_EXPORT); an INCREMENTAL_EXPORT's ``outputView`` is
       NEW_IMAGE or NEW_AND_OLD_IMAGES;
    5. ``manifest-files.json`` at ``manifestFilesS3Key`` (from the bucket's root), and
       ``manifest-files.md5`` beside the summary, the base64 MD5 of it; JSON Lines split at
       ``\\n``;
    6. the entries' ``itemCount``s add up to the summary's ``itemCount``;
    7. each entry's ``dataFileS3Key`` (from the bucket's root) holds an object whose base64 MD5
       is its ``md5Checksum``;
    8. each line's key attributes are present, with the table's types;
    9. a full export's lines are ``{"Item": ...}``; an incremental export's have ``Keys`` and
       ``Metadata``: a ``NewImage`` is a put, no image a delete.
    """
    base = f"{PREFIX}/AWSDynamoDB/{export_id}"
    summary_body = chain.get(f"{base}/manifest-summary.json")
    if chain.get(f"{base}/manifest-summary.md5").decode().strip() != _md5(summary_body):
        raise ValueError("manifest-summary.json: MD5 checksum mismatch")
    summary = json.loads(summary_body)
    arn = summary.get("tableArn") or ""
    if not arn.startswith("arn:") or ":dynamodb:" not in arn:
        raise ValueError(f"invalid tableArn {arn!r}")
    if summary.get("outputFormat") != "DYNAMODB_JSON":
        raise ValueError("unsupported outputFormat")
    export_type = summary.get("exportType", "FULL_EXPORT")
    if export_type == "INCREMENTAL_EXPORT" and summary.get("outputView") not in (
        "NEW_IMAGE",
        "NEW_AND_OLD_IMAGES",
    ):
        raise ValueError("unsupported outputView")
    files_body = chain.get(summary["manifestFilesS3Key"])
    if chain.get(f"{base}/manifest-files.md5").decode().strip() != _md5(files_body):
        raise ValueError("manifest-files.json: MD5 checksum mismatch")
    entries = [json.loads(x) for x in files_body.decode().strip().split("\n") if x.strip()]
    if sum(e.get("itemCount", 0) for e in entries) != summary["itemCount"]:
        raise ValueError("item count mismatch")
    for entry in entries:
        body = chain.get(entry["dataFileS3Key"])
        if _md5(body) != entry["md5Checksum"]:
            raise ValueError(f"{entry['dataFileS3Key']}: MD5 checksum mismatch")
        for text in gzip.decompress(body).decode("utf-8").split("\n"):
            if text:
                _apply(json.loads(text), export_type, table)


def _apply(line: dict[str, Any], export_type: str, table: dict[tuple[str, str], Item]) -> None:
    keys = line["Item"] if export_type == "FULL_EXPORT" else line["Keys"]
    if export_type != "FULL_EXPORT" and "Metadata" not in line:
        raise ValueError("an incremental line without Metadata")
    for name, kind in KEYS:
        if kind not in keys.get(name, {}):
            raise ValueError(f"key attribute {name} missing or not of type {kind}")
    key = (keys["pk"]["S"], keys["sk"]["S"])
    image = line.get("Item") or line.get("NewImage")
    if image is not None:
        table[key] = from_json_item(image)
    else:
        table.pop(key, None)


def test_aws_labs_reader_loads_the_chain_in_order_and_gets_the_source(
    chain: Chain, function_session: boto3.Session
) -> None:
    # The chain's order, from latest.json back through previousExportId to the full export.
    pointer = json.loads(chain.get(f"{PREFIX}/latest.json"))
    order = [pointer["exportId"]]
    while (previous := chain.summary(order[0]).get("previousExportId")) is not None:
        order.insert(0, previous)
    assert order == chain.exports
    table: dict[tuple[str, str], Item] = {}
    for export_id in order:
        aws_labs_load(chain, export_id, table)
    assert table == chain.expected

    # `verify` reads the same chain, split at \n only: values and keys hold U+2028, U+2029,
    # U+0085 and \r (before, it split at them too and found more lines than the manifest).
    comparison, where = verify_copy(
        chain.settings, base_session=function_session, role_session_name="verify"
    )
    assert where.endswith(f"/AWSDynamoDB/{chain.exports[-1]}/")
    assert comparison.matches, comparison
    assert comparison.source_items == len(chain.expected)


def _old_export(
    s3: Any, bucket: str, export_id: str, lines: list[dict[str, Any]], **summary: Any
) -> None:
    """An export as table-sync wrote them before DynamoDB's layout (248b9f7): hex .checksum
    files, data named by segment and sequence beside the manifests, an indented summary with
    exportType on full exports too."""
    base = f"old/AWSDynamoDB/{export_id}"
    data = gzip.compress("".join(json.dumps(x) + "\n" for x in lines).encode(), mtime=0)
    s3.put_object(Bucket=bucket, Key=f"{base}/_started", Body=b"")
    s3.put_object(Bucket=bucket, Key=f"{base}/data/00000-000000.json.gz", Body=data)
    entry = {
        "itemCount": len(lines),
        "md5Checksum": _md5(data),
        "etag": "",
        "dataFileS3Key": f"{base}/data/00000-000000.json.gz",
    }
    files = (json.dumps(entry) + "\n").encode()
    body = json.dumps(
        {**summary, "manifestFilesS3Key": f"{base}/manifest-files.json", "itemCount": len(lines)},
        indent=2,
    ).encode()
    for name, content in (("manifest-files", files), ("manifest-summary", body)):
        s3.put_object(Bucket=bucket, Key=f"{base}/{name}.json", Body=content)
        checksum = hashlib.md5(content).hexdigest().encode()  # noqa: S324
        s3.put_object(Bucket=bucket, Key=f"{base}/{name}.checksum", Body=checksum)


def test_a_chain_in_the_old_layout_is_still_read(aws: EmbeddedAws) -> None:
    """README's upgrade promise: verify (compare.read_export) still reads a chain written
    before the change; the next run after the upgrade is a full snapshot (tests/unit/
    test_export_chain.py)."""
    from table_sync.compare import read_export

    s3 = aws.account_b().client("s3")
    a, b = {"pk": {"S": "a"}, "v": {"S": "1"}}, {"pk": {"S": "b"}, "v": {"S": "2"}}
    changed = {"pk": {"S": "a"}, "v": {"S": "3"}}
    _old_export(s3, aws.bucket, "old-1", [{"Item": a}, {"Item": b}], exportType="FULL_EXPORT")
    _old_export(
        s3,
        aws.bucket,
        "old-2",
        [
            {"Metadata": {}, "Keys": {"pk": a["pk"]}, "NewImage": changed},
            {"Metadata": {}, "Keys": {"pk": b["pk"]}},
        ],
        exportType="INCREMENTAL_EXPORT",
        previousExportId="old-1",
    )
    export = read_export(s3, aws.bucket, f"s3://{aws.bucket}/old/AWSDynamoDB/old-2/")
    assert export.items == {"a": from_json_item(changed)}
    assert export.duplicates == []
