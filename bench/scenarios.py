"""One benchmark scenario per process, so CPU time and peak RSS are the syncing process's own.

Run as ``python -m bench.scenarios <name> <config.json>``; prints one JSON line of results.
Peak RSS includes the interpreter and the libraries imported (boto3 for all; table-sync's
pydantic and Powertools for all too, since this module imports them).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3

# Imported before any scenario's clock starts, as a running Lambda has them: import time is not
# per-item work. (The two baselines import only boto3.)
from table_sync.aws.clients import connect_source, kms_client_config
from table_sync.aws.dynamodb_lean import LeanDynamoDBClient
from table_sync.aws.kms_lean import LeanKmsClient
from table_sync.handler import lambda_handler
from table_sync.models import Invocation, Settings
from table_sync.runs import run_step
from table_sync_dev.local.context import LocalLambdaContext


def peak_rss_mb(pid: int | str = "self") -> float:
    """The process's own peak resident set (VmHWM). Not getrusage's ru_maxrss: Linux carries
    that over from the parent through fork and exec, so every child of a big parent would
    report at least the parent's size."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/status")


def _session(creds: dict[str, str]) -> boto3.Session:
    return boto3.Session(
        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=creds["AWS_SESSION_TOKEN"],
        region_name="eu-west-1",
    )


def _reader(config: dict[str, Any]) -> boto3.Session:
    """The runbook's way in: assume the reader role once (the benchmark's runs are short)."""
    sts = _session(config["function_credentials"]).client("sts")
    creds = sts.assume_role(
        RoleArn=config["role_arn"], RoleSessionName="bench", ExternalId=config["external_id"]
    )["Credentials"]
    return _session(
        {
            "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
            "AWS_SESSION_TOKEN": creds["SessionToken"],
        }
    )


def floor(config: dict[str, Any]) -> dict[str, Any]:
    """(a) A plain paginated low-level scan and one Decrypt per ciphertext; nothing else. With
    ``"kms_client": "lean"`` it is the default path's floor: the scan goes through the lean
    DynamoDB client (DYNAMODB_CLIENT=lean), and each page's Decrypts through the lean KMS
    client as a segment sends them, DECRYPT_CONCURRENCY in flight from one thread
    (``decrypt_many``); with botocore's, one after another."""
    reader = _reader(config)
    ddb: Any = reader.client("dynamodb")
    kms: Any = reader.client("kms")
    lean = config.get("kms_client") == "lean"
    concurrency = 1
    if lean:
        settings = Settings.from_env(config["lambda_env"])
        concurrency = settings.decrypt_concurrency
        kms = LeanKmsClient(reader, None, kms_client_config(settings))
        ddb = LeanDynamoDBClient(ddb, reader)
    items = requests = 0
    kwargs: dict[str, Any] = {"TableName": config["table"]}
    while True:
        page = ddb.scan(**kwargs)
        blobs = [
            item[name]["B"]
            for item in page["Items"]
            for name in config["encrypted"]
            if name in item
        ]
        items += len(page["Items"])
        requests += len(blobs)
        if lean:
            for result in kms.decrypt_many(
                [(blob, None) for blob in blobs], config["key_arn"], concurrency
            ):
                if isinstance(result, Exception):
                    raise result
        else:
            for blob in blobs:
                kms.decrypt(CiphertextBlob=blob, KeyId=config["key_arn"])
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return {"items": items, "kms_requests": requests}


def naive(config: dict[str, Any]) -> dict[str, Any]:
    """(b) The script the runbook implies: a resource-level scan, a sequential Decrypt per
    attribute, one PutItem per item."""
    reader = _reader(config)
    table = reader.resource("dynamodb").Table(config["table"])
    kms = reader.client("kms")
    target = (
        _session(config["function_credentials"]).resource("dynamodb").Table(config["copy_table"])
    )
    items = requests = 0
    kwargs: dict[str, Any] = {}
    while True:
        page = table.scan(**kwargs)
        for item in page["Items"]:
            for name in config["encrypted"]:
                if name in item:
                    plaintext = kms.decrypt(
                        CiphertextBlob=bytes(item[name]), KeyId=config["key_arn"]
                    )["Plaintext"]
                    try:
                        item[name] = plaintext.decode()
                    except UnicodeDecodeError:
                        item[name] = plaintext
                    requests += 1
            target.put_item(Item=item)
            items += 1
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return {"items": items, "kms_requests": requests}


def table_sync(config: dict[str, Any], destination: str) -> dict[str, Any]:
    """(d) and (e): table-sync itself, as `table-sync run` runs it."""
    settings = Settings.from_env({**config["settings"], "DESTINATION": destination})
    summary = run_step(
        settings,
        Invocation(trigger="backfill"),
        base_session=_session(config["function_credentials"]),
        role_session_name="bench",
    )
    return {"items": summary.items_written, "kms_requests": summary.kms_requests}


def dynamodump(config: dict[str, Any]) -> dict[str, Any]:
    """(c) dynamodump backing the table up (it copies ciphertexts as they are: no decrypt), run
    from its own tool environment; its CPU and peak RSS are read as this process's child's."""
    reader = _reader(config).get_credentials()
    assert reader is not None
    endpoint = urlsplit(os.environ["AWS_ENDPOINT_URL"])
    with tempfile.TemporaryDirectory() as dump:
        command = [
            config["dynamodump"],
            *("-m", "backup", "-r", "eu-west-1", "-s", config["table"]),
            *("--host", str(endpoint.hostname), "--port", str(endpoint.port)),
            *("--accessKey", reader.access_key, "--secretKey", reader.secret_key),
            *("--dumpPath", dump, "--log", "warning"),
        ]
        child = subprocess.Popen(command, cwd=dump, stdout=subprocess.DEVNULL)
        peak = 0.0
        while child.poll() is None:  # VmHWM only grows: the last reading is the peak
            with contextlib.suppress(FileNotFoundError, ProcessLookupError, RuntimeError):
                peak = max(peak, peak_rss_mb(child.pid))
            time.sleep(0.02)
        if child.returncode != 0:
            raise RuntimeError(f"dynamodump failed with exit code {child.returncode}")
        items = sum(
            len(json.loads(page.read_text())["Items"])
            for page in Path(dump, config["table"], "data").glob("*.json")
        )
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "items": items,
        "kms_requests": 0,
        "child_cpu_s": usage.ru_utime + usage.ru_stime,
        "child_peak_rss_mb": peak,
    }


def kms_decrypt(config: dict[str, Any]) -> dict[str, Any]:
    """The client CPU of one Decrypt, through the KMS client a run makes (``connect_source``,
    KMS_CLIENT as configured, the decrypter's cache off): ``calls`` distinct ciphertexts, one
    after another, timed after a few to warm up (connection, credentials, signing config)."""
    settings = Settings.from_env({**config["lambda_env"], "KMS_CACHE_SIZE": "0"})
    source = connect_source(
        settings, _session(config["function_credentials"]), role_session_name="bench"
    )
    blobs = [base64.b64decode(blob) for blob in config["ciphertexts"]]
    warm, timed = blobs[:20], blobs[20:]
    for blob in warm:
        source.kms.decrypt(blob)
    cpu0 = time.process_time()
    for blob in timed:
        source.kms.decrypt(blob)
    cpu = time.process_time() - cpu0
    return {"items": len(timed), "kms_requests": source.kms.requests, "call_cpu_s": cpu}


def table_sync_segment(config: dict[str, Any]) -> dict[str, Any]:
    """One segment of a parallel run, as its own Lambda would run it: the handler, with the
    function's environment and a segment event (the state machine's)."""
    os.environ.update(config["lambda_env"])
    event = {
        "trigger": "segment",
        "id": f"bench-{config['run_id']}-{config['segment']}",
        "run_id": config["run_id"],
        "segment": config["segment"],
        "total_segments": config["total_segments"],
    }
    summary = lambda_handler(event, LocalLambdaContext())  # type: ignore[arg-type]
    if summary.get("status") != "segment-done":
        raise SystemExit(f"segment did not finish: {summary}")
    return {
        "items": summary["items_written"],
        "pages": summary["pages"],
        "kms_requests": summary["kms_requests"],
    }


def table_sync_mirror(config: dict[str, Any]) -> dict[str, Any]:
    """One nightly run of the mirror, as the scheduled Lambda runs it (one segment)."""
    os.environ.update(config["lambda_env"])
    summary = lambda_handler({"trigger": "backfill"}, LocalLambdaContext())  # type: ignore[arg-type]
    if summary.get("status") != "succeeded":
        raise SystemExit(f"the mirror run did not succeed: {summary}")
    return {
        name: summary[name]
        for name in (
            "items_scanned",
            "items_unchanged",
            "items_written",
            "items_swept",
            "kms_requests",
            "estimated_cost_usd",
        )
    }


def main() -> None:
    name, config_path = sys.argv[1], sys.argv[2]
    with open(config_path) as handle:
        config = json.load(handle)
    started, cpu0 = time.perf_counter(), time.process_time()
    if name == "floor":
        result = floor(config)
    elif name == "naive":
        result = naive(config)
    elif name == "table-sync-dynamodb":
        result = table_sync(config, f"dynamodb://{config['copy_table']}")
    elif name == "table-sync-s3":
        result = table_sync(config, f"s3://{config['bucket']}/bench")
    elif name == "kms-decrypt":
        result = kms_decrypt(config)
    elif name == "table-sync-segment":
        result = table_sync_segment(config)
    elif name == "table-sync-mirror":
        result = table_sync_mirror(config)
    elif name == "dynamodump":
        result = dynamodump(config)
    else:
        raise SystemExit(f"unknown scenario {name}")
    result.update(
        wall_s=time.perf_counter() - started,
        cpu_s=result.pop("child_cpu_s", time.process_time() - cpu0),
        peak_rss_mb=result.pop("child_peak_rss_mb", None) or peak_rss_mb(),
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
