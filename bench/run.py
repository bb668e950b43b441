"""`make bench`: how fast, how cheap and how big table-sync is, against the runbook's way.

1. On the embedded AWS (moto): one table (BENCH_ITEMS items, default 1,000, two KMS-encrypted
   attributes, distinct ciphertexts); each scenario in its own process (CPU and peak RSS are its
   own), BENCH_REPEATS runs (default 3), medians: the floor, the naive script, dynamodump (from
   its own tool environment, DYNAMODUMP), and table-sync to DynamoDB and to S3. moto serves
   every request from one core, so wall times measure moto as much as the client; CPU per item
   is the client's own.
   Then `table-sync run --full` as a user runs it (the CLI, a process of its own), with each
   KMS_CLIENT, over the table and over an empty one: CPU per item, less the empty run's CPU.
2. On the latency model, at scale: see bench/scale.py (BENCH_SCALE=0 skips it).

Prints the tables and writes bench/results/latest.json.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import charts, scale
from table_sync_dev.local.seed import SOURCE_TABLE, EmbeddedAws, provision
from table_sync_dev.local.server import MotoServer

SCENARIOS = ["floor", "naive", "dynamodump", "table-sync-dynamodb", "table-sync-s3"]
RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    items = int(os.environ.get("BENCH_ITEMS", "1000"))
    scenarios = (
        SCENARIOS
        if os.environ.get("DYNAMODUMP")
        else [name for name in SCENARIOS if name != "dynamodump"]
    )
    repeats = int(os.environ.get("BENCH_REPEATS", "3"))
    # dynamodump 1.11.1 always starts 25 backup workers 1 s apart (a single-table backup falls
    # into its multi-table path), so each run is 25 s of its own waiting: once is enough.
    dynamodump_repeats = int(os.environ.get("BENCH_DYNAMODUMP_REPEATS", "1"))
    with MotoServer() as server:
        os.environ["AWS_ENDPOINT_URL"] = server.endpoint
        print(f"provisioning {items} items on the embedded AWS ...", flush=True)
        aws = provision(server.endpoint, items=items)
        config = {
            "role_arn": aws.reader_role_arn,
            "external_id": aws.external_id,
            "key_arn": aws.key_arn,
            "table": SOURCE_TABLE,
            "copy_table": aws.destination_table,
            "bucket": aws.bucket,
            "encrypted": ["ssn", "api_secret"],  # Binary ciphertexts (card is base64 text)
            "settings": aws.settings_env(ENCRYPTED_ATTRIBUTES="ssn,api_secret"),
            "function_credentials": aws.function_credentials().as_env(),
            # absolute: dynamodump runs in a temporary directory of its own
            "dynamodump": str(Path(os.environ.get("DYNAMODUMP", "")).resolve()),
        }
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in scenarios}
        for repeat in range(repeats):
            for name in scenarios:
                if name == "dynamodump" and repeat >= dynamodump_repeats:
                    continue
                runs[name].append(scale.run_scenario(name, config, server.endpoint))
                print(
                    f"  run {repeat + 1}/{repeats} {name}: {runs[name][-1]['wall_s']:.1f} s",
                    flush=True,
                )
        cli = cli_cpu(aws, items, repeats)
    rows = {name: {**_median(results), "runs": len(results)} for name, results in runs.items()}
    floor, naive = rows["floor"], rows["naive"]
    for row in rows.values():
        row["items_per_s"] = row["items"] / row["wall_s"]
        row["cpu_us_per_item"] = 1e6 * row["cpu_s"] / row["items"]
        row["cpu_vs_floor"] = row["cpu_s"] / floor["cpu_s"]
        row["speed_vs_naive"] = row["items_per_s"] / (naive["items"] / naive["wall_s"])
    _print(rows, items, repeats)
    _print_cli(cli, items, repeats)
    result: dict[str, Any] = {
        "embedded_aws": {"items": items, "repeats": repeats, "scenarios": rows, "cli": cli}
    }
    if os.environ.get("BENCH_SCALE", "1") != "0":
        result["latency_model"] = scale.main()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(result, indent=2))
    print(f"\nwritten {RESULTS / 'latest.json'}")
    for chart in charts.write_charts(result):  # the documentation's, from this run
        print(f"written {chart}")
    return 0


def cli_cpu(aws: EmbeddedAws, items: int, repeats: int) -> dict[str, Any]:
    """`table-sync run --full` to DynamoDB, as a user runs it, with each KMS_CLIENT: the CLI
    process's CPU over the table, less its CPU over an empty table (start-up, imports,
    AssumeRole), per item. Medians of ``repeats``, the paths taking turns."""
    empty = aws.isolated("bench-empty", items=0)
    cpu: dict[tuple[str, str], list[float]] = {}
    for _ in range(repeats):
        for path in ("lean", "botocore"):
            for label, view in (("table", aws), ("empty", empty)):
                env = {
                    **os.environ,
                    **view.lambda_env(ENCRYPTED_ATTRIBUTES="ssn,api_secret", KMS_CLIENT=path),
                    "POWERTOOLS_LOG_LEVEL": "WARNING",
                }
                command = [str(Path(sys.executable).with_name("table-sync")), "run", "--full"]
                child = subprocess.Popen(
                    [*command, "--json"], env=env, stdout=subprocess.PIPE, text=True
                )
                assert child.stdout is not None
                summary = json.loads(child.stdout.read())
                _, status, usage = os.wait4(child.pid, 0)
                written = summary["items_written"]
                if status != 0 or written != (items if label == "table" else 0):
                    raise RuntimeError(f"table-sync run ({path}, {label}): {summary}")
                cpu.setdefault((path, label), []).append(usage.ru_utime + usage.ru_stime)
    result: dict[str, Any] = {}
    for path in ("lean", "botocore"):
        table, idle = (statistics.median(cpu[path, label]) for label in ("table", "empty"))
        result[path] = {
            "cpu_s": table,
            "empty_cpu_s": idle,
            "cpu_us_per_item": 1e6 * (table - idle) / items,
        }
    result["ratio"] = result["lean"]["cpu_us_per_item"] / result["botocore"]["cpu_us_per_item"]
    return result


def _print_cli(cli: dict[str, Any], items: int, repeats: int) -> None:
    print(
        f"\n`table-sync run --full` (the CLI) on the embedded AWS: {items} items, median of "
        f"{repeats}; CPU per item less a run over an empty table"
    )
    print(f"{'KMS_CLIENT':<12}{'CPU s':>8}{'empty CPU s':>13}{'CPU us/item':>13}")
    for path in ("lean", "botocore"):
        r = cli[path]
        print(f"{path:<12}{r['cpu_s']:>8.2f}{r['empty_cpu_s']:>13.2f}{r['cpu_us_per_item']:>13.0f}")
    print(f"lean / botocore: {cli['ratio']:.2f}x")


def _median(results: list[dict[str, Any]]) -> dict[str, Any]:
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def _print(rows: dict[str, dict[str, Any]], items: int, repeats: int) -> None:
    print(
        f"\nembedded AWS (moto): {items} items, 2 encrypted attributes, median of {repeats} runs"
        + (" (dynamodump: 1)" if rows.get("dynamodump", {}).get("runs") == 1 else "")
    )
    header = f"{'scenario':<22}{'wall s':>8}{'items/s':>9}{'CPU s':>8}{'CPU us/item':>12}{'RSS MB':>8}{'KMS req':>9}{'CPU/floor':>10}{'x naive':>8}"
    print(header)
    print("-" * len(header))
    for name, r in rows.items():
        print(
            f"{name:<22}{r['wall_s']:>8.1f}{r['items_per_s']:>9.0f}{r['cpu_s']:>8.2f}"
            f"{r['cpu_us_per_item']:>12.0f}{r['peak_rss_mb']:>8.0f}{r['kms_requests']:>9.0f}"
            f"{r['cpu_vs_floor']:>10.2f}{r['speed_vs_naive']:>8.2f}"
        )


if __name__ == "__main__":
    raise SystemExit(main())
