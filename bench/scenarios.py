"""One benchmark scenario per process, so CPU time and peak RSS are the syncing process's own.

Run as ``python -m bench.scenarios <name> <config.json>``; prints one JSON line of results.
Peak RSS includes the interpreter and the libraries imported (boto3 for all; table-sync's
pydantic and Powertools for all too, since this module imports them).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from typing import Any

import boto3

# Imported before any scenario's clock starts, as a running Lambda has them: import time is not
# per-item work. (The two baselines import only boto3.)
from table_sync.models import Invocation, Settings
from table_sync.service import sync


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
    """(a) A plain paginated low-level scan and one Decrypt per ciphertext; nothing else."""
    reader = _reader(config)
    ddb, kms = reader.client("dynamodb"), reader.client("kms")
    items = requests = 0
    for page in ddb.get_paginator("scan").paginate(TableName=config["table"]):
        for item in page["Items"]:
            items += 1
            for name in config["encrypted"]:
                if name in item:
                    kms.decrypt(CiphertextBlob=item[name]["B"], KeyId=config["key_arn"])
                    requests += 1
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
    summary = sync(
        settings,
        Invocation(trigger="backfill"),
        base_session=_session(config["function_credentials"]),
        role_session_name="bench",
    )
    return {"items": summary.items_written, "kms_requests": summary.kms_requests}


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
    else:
        raise SystemExit(f"unknown scenario {name}")
    result.update(
        wall_s=time.perf_counter() - started,
        cpu_s=time.process_time() - cpu0,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
