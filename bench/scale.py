"""The scale half of `make bench`: table-sync on the latency model (bench/latency_model.py).

Every scenario runs in its own process, against model servers that are processes of their own
(their CPU is measured and reported apart). Segments of a parallel run are separate processes,
as separate Lambdas would be, run one after another. Each measured process is pinned to one
core (``taskset``, see :func:`cpus`) and the model servers to the others, so the figures are per
vCPU; a run's wall time with one Lambda per segment is its slowest segment's.

* **Decrypt**: client CPU per Decrypt of each KMS_CLIENT path (lean, botocore), sequential, on
  a model with no latency (BENCH_DECRYPT_CALLS calls, median of 3);
* **floor**: the floor scenario on a model with no latency, for the client CPU per item, once
  with each path (the lean one is the CPU floor below);
* **naive**: the runbook's sequential script on 5,000 items (BENCH_NAIVE_ITEMS);
* **throughput**: 100,000 items (BENCH_SCALE_ITEMS), every ciphertext distinct, in
  BENCH_SEGMENTS segments, with each path, segment by segment (segment n of the lean run right
  beside segment n of the botocore run, so each pair shares the VM's speed of the moment):
  wall time against the latency floor (what the latencies allow at best: the slowest of
  pages x Scan latency, Decrypts x latency / DECRYPT_CONCURRENCY and BatchWriteItems x latency
  / DECRYPT_CONCURRENCY) and against the CPU floor (items x the lean floor's CPU per item).
  This VM's CPU speed drifts by 10-25% from one minute to the next, so the lean floor is
  measured again right before and right after each segment, and each segment is held to the
  mean of its own two;
* **re-encryption**: one segment of BENCH_REENCRYPT_ITEMS (20,000) with REENCRYPT_ATTRIBUTES
  off and on, taking turns, for the client CPU per item of each (on the latency model, whose
  KMS answers GenerateDataKey for AccountB's key);
* **memory**: 100,000 and 1,000,000 items (BENCH_MEMORY_ITEMS) in the same segments, whose
  ciphertexts repeat (1,000 distinct, inside KMS_CACHE_SIZE), for peak RSS against size, two
  segments at a time on the model without latency. Two Decrypts per item of a million items
  would take this machine over half an hour of CPU in boto3 alone; with repeated ciphertexts
  every other part of the pipeline still handles every item.

The naive script runs beside the throughput segments (it sleeps 90% of its time).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.latency_model import HEADER, Latency, Table
from table_sync.models import Settings

ACCOUNT_A = "111111111111"
REGION = "eu-west-1"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT_A}:key/11111111-2222-3333-4444-555555555555"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT_A}:role/my-table-reader"
FUNCTION_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIABENCHFUNCTIONROLE",
    "AWS_SECRET_ACCESS_KEY": "bench-function-secret",
    "AWS_SESSION_TOKEN": "bench-function-token",
}
ENCRYPTED = ["ssn", "api_secret"]


def cpus() -> tuple[int | None, set[int]]:
    """The core the measured client is pinned to (``taskset``, so its figures are per vCPU),
    and the cores left to the model servers; no pinning without taskset or with one core."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2 or shutil.which("taskset") is None:
        return None, set(allowed)
    return allowed[-1], set(allowed[:-1])


class ModelServer:
    """``python -m bench.latency_model`` in a process of its own, on a free loopback port, on
    the cores the measured client is not pinned to."""

    def __init__(self, latency_scale: float = 1.0) -> None:
        self.latency_scale = latency_scale
        self._process: subprocess.Popen[str] | None = None
        self.endpoint = ""

    def __enter__(self) -> ModelServer:
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.latency_model",
                "--latency-scale",
                str(self.latency_scale),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        os.sched_setaffinity(self._process.pid, cpus()[1])
        line = self._process.stdout.readline()
        if not line.startswith("listening "):
            raise RuntimeError(f"latency model did not start: {line!r}")
        self.endpoint = f"http://127.0.0.1:{int(line.split()[1])}"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)

    def stats(self) -> dict[str, int]:
        url = f"{self.endpoint}/_model/stats"
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
            return dict(json.load(response))

    def cpu_seconds(self) -> float:
        """The server's own CPU so far (user + system), from /proc."""
        assert self._process is not None
        fields = Path(f"/proc/{self._process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_scenario(
    name: str,
    config: dict[str, Any],
    endpoint: str,
    *,
    pinned: bool = False,
    beside_servers: bool = False,
) -> dict[str, Any]:
    """``python -m bench.scenarios <name>`` in a process of its own, against ``endpoint``;
    ``pinned``: on one core (``taskset -c``), see :func:`cpus`; ``beside_servers``: on the
    model servers' cores, off the measured one (for what runs beside a measurement)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(config, handle)
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "table-sync",
    }
    try:
        client_cpu, server_cpus = cpus()
        where = None
        if pinned and client_cpu is not None:
            where = str(client_cpu)
        elif beside_servers and client_cpu is not None:
            where = ",".join(str(c) for c in sorted(server_cpus))
        done = subprocess.run(
            [
                *(["taskset", "-c", where] if where is not None else []),
                *(sys.executable, "-m", "bench.scenarios", name, handle.name),
            ],
            capture_output=True,
            text=True,
            env=env,
        )
    finally:
        os.unlink(handle.name)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def baseline_config(table: str) -> dict[str, Any]:
    return {
        "role_arn": ROLE_ARN,
        "external_id": "table-sync-bench",
        "key_arn": KEY_ARN,
        "table": table,
        "copy_table": "bench-copy",
        "encrypted": ENCRYPTED,
        "function_credentials": FUNCTION_CREDENTIALS,
    }


def segment_config(
    table: str, run_id: str, segment: int, total: int, kms_client: str | None = None
) -> dict[str, Any]:
    """A segment's event and the function's environment; ``kms_client``: KMS_CLIENT, when not
    the default."""
    return {
        "run_id": run_id,
        "segment": segment,
        "total_segments": total,
        "lambda_env": {
            **FUNCTION_CREDENTIALS,
            "SOURCE_ROLE_ARN": ROLE_ARN,
            "SOURCE_EXTERNAL_ID": "table-sync-bench",
            "SOURCE_TABLE_NAME": table,
            "SOURCE_KMS_KEY_ARN": KEY_ARN,
            "ENCRYPTED_ATTRIBUTES": ",".join(ENCRYPTED),
            "DESTINATION": "dynamodb://bench-copy",
            "QUARANTINE": "dynamodb://bench-quarantine",
            "STATE_TABLE": "bench-state",
            "AWS_LAMBDA_FUNCTION_NAME": "table-sync",
            **({"KMS_CLIENT": kms_client} if kms_client else {}),
        },
    }


def run_segment(
    server: ModelServer,
    table: str,
    n: int,
    total: int,
    label: str,
    *,
    kms_client: str | None = None,
    floor: Callable[[], float] | None = None,
    floor_before: float | None = None,
    pinned: bool = True,
) -> dict[str, Any]:
    """Segment ``n`` of ``total`` of run ``label``, in a process of its own; ``floor``: measured
    right before it (unless ``floor_before`` is the floor measured just now) and right after it
    (``floor_after_us``); the mean CPU per item of the two is the segment's
    ``floor_us_per_item``. ``pinned``: alone, on one core; the model's counts of this segment's
    own requests are then checked against its summary (every item arrived, decrypted; the
    model's count of Decrypts is the client's)."""
    if floor is not None and floor_before is None:
        floor_before = floor()
    before = server.stats() if pinned else {}
    row = run_scenario(
        "table-sync-segment",
        segment_config(table, f"bench-{label}", n, total, kms_client),
        server.endpoint,
        pinned=pinned,
    )
    row["segment"] = n
    if floor is not None and floor_before is not None:
        row["floor_after_us"] = floor()
        row["floor_us_per_item"] = (floor_before + row["floor_after_us"]) / 2
    if pinned:  # this segment's own requests
        after = server.stats()
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        row["model_decrypts"] = delta.get("kms.Decrypt", 0)
        row["batch_writes"] = delta.get("dynamodb.BatchWriteItem", 0)
        if not delta.get("items_put") == delta.get("plaintexts_put") == row["items"]:
            raise RuntimeError(f"{label} segment {n}: not every item arrived decrypted: {delta}")
        if row["model_decrypts"] != row["kms_requests"]:
            raise RuntimeError(f"{label} segment {n}: the model counted {delta}: {row}")
    print(
        f"  {label} segment {n + 1}/{total}: {row['items']} items, {row['wall_s']:.1f} s, "
        f"peak RSS {row['peak_rss_mb']:.0f} MB",
        flush=True,
    )
    return row


def _check_run(rows: list[dict[str, Any]], table: str, label: str) -> None:
    if sum(r["items"] for r in rows) != Table.named(table).items:
        raise RuntimeError(f"{label}: the segments did not copy the table: {rows}")


def run_segments(
    server: ModelServer,
    table: str,
    total: int,
    label: str,
    *,
    parallel: int = 1,
    kms_client: str | None = None,
) -> list[dict[str, Any]]:
    """Every segment of one run (see :func:`run_segment`), ``parallel`` at a time (one at a
    time: pinned to one core). Checks that every item arrived, decrypted, and that the model's
    count of Decrypts agrees with the client's."""
    before = server.stats()
    with ThreadPoolExecutor(parallel) as pool:
        rows = list(
            pool.map(
                lambda n: run_segment(
                    server,
                    table,
                    n,
                    total,
                    label,
                    kms_client=kms_client,
                    pinned=parallel == 1,
                ),
                range(total),
            )
        )
    after = server.stats()
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    items = Table.named(table).items
    if not delta.get("items_put") == delta.get("plaintexts_put") == items:
        raise RuntimeError(f"{label}: not every item arrived decrypted: {delta}")
    if delta.get("kms.Decrypt") != sum(r["kms_requests"] for r in rows):
        raise RuntimeError(f"{label}: the segments' counts disagree with the model's: {delta}")
    _check_run(rows, table, label)
    return rows


def run_paired(
    server: ModelServer,
    table: str,
    total: int,
    label: str,
    paths: tuple[str, str],
    *,
    floor: Callable[[], float] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """A run of ``total`` segments with each of two KMS_CLIENT ``paths``, segment by segment:
    segment n of one right beside segment n of the other (which goes first alternates), each
    pinned, so each pair is measured under the same drift of this VM's speed (minutes apart,
    it differs by up to a third). Each segment is checked as :func:`run_segment` says. The
    floor measured right after one segment is the one right before the next."""
    rows: dict[str, list[dict[str, Any]]] = {path: [] for path in paths}
    last_floor: float | None = None
    for n in range(total):
        for path in paths if n % 2 == 0 else paths[::-1]:
            row = run_segment(
                server,
                table,
                n,
                total,
                f"{label}-{path}",
                kms_client=path,
                floor=floor,
                floor_before=last_floor,
            )
            last_floor = row.get("floor_after_us")
            rows[path].append(row)
    for path, path_rows in rows.items():
        _check_run(path_rows, table, f"{label}-{path}")
    return rows


def mirror_config(table: str) -> dict[str, Any]:
    env = segment_config(table, "", 0, 1)["lambda_env"]
    return {"lambda_env": {**env, "DESTINATION": "dynamodb://mirror-copy"}}


def nightly(server: ModelServer, items: int, every: int, delete_every: int) -> dict[str, Any]:
    """The nightly mirror: a full first run, then ``1/every`` of the items updated and
    ``1/delete_every`` deleted, and the second run; each its own process, on the latency model."""
    table = f"bench-{items}"
    runs = {}
    for label in ("full", "nightly"):
        if label == "nightly":
            body = json.dumps({"table": table, "every": every, "delete_every": delete_every})
            request = urllib.request.Request(  # noqa: S310 - loopback
                f"{server.endpoint}/_model/change", data=body.encode(), method="POST"
            )
            urllib.request.urlopen(request, timeout=10).close()  # noqa: S310
        before = server.stats()
        row = run_scenario("table-sync-mirror", mirror_config(table), server.endpoint)
        after = server.stats()
        row["model_decrypts"] = after.get("kms.Decrypt", 0) - before.get("kms.Decrypt", 0)
        row["model_puts"] = after.get("items_put", 0) - before.get("items_put", 0)
        runs[label] = row
        print(
            f"  mirror {label}: {row['wall_s']:.1f} s, {row['kms_requests']} KMS requests, "
            f"{row['items_written']} written, {row['items_swept']} deleted",
            flush=True,
        )
    full, again = runs["full"], runs["nightly"]
    if again["model_decrypts"] != again["kms_requests"] or full["model_puts"] != items:
        raise RuntimeError(f"the mirror's counts disagree with the model's: {runs}")
    # An item both updated and deleted is only deleted.
    expected_changes = sum(
        1 for i in range(0, items, every) if i % delete_every != delete_every // 2
    )
    if again["items_written"] != expected_changes:
        raise RuntimeError(
            f"the nightly run wrote {again['items_written']}, not {expected_changes}"
        )
    return {
        "items": items,
        "changed": expected_changes,
        "deleted": again["items_swept"],
        "full": full,
        "nightly": again,
        "kms_ratio": again["kms_requests"] / full["kms_requests"],
        "wall_ratio": again["wall_s"] / full["wall_s"],
    }


def measure_floor(server: ModelServer, items: int, path: str) -> dict[str, Any]:
    """The floor scenario with ``path``'s clients, pinned, on ``server`` (no latency): its row,
    with its client CPU per item."""
    config = {
        **baseline_config(f"bench-{items}"),
        "kms_client": path,
        "lambda_env": segment_config("bench-1", "", 0, 1)["lambda_env"],
    }
    row = run_scenario("floor", config, server.endpoint, pinned=True)
    row["cpu_us_per_item"] = 1e6 * row["cpu_s"] / row["items"]
    print(f"  floor ({path}): {row['cpu_us_per_item']:.0f} us CPU per item", flush=True)
    return row


def latency_floor(row: dict[str, Any], latency: Latency, concurrency: int) -> float:
    return max(
        row["pages"] * latency.scan,
        row["model_decrypts"] * latency.decrypt / concurrency,
        row["batch_writes"] * latency.batch_write / concurrency,
    )


@contextlib.contextmanager
def in_background(target: Any, *args: Any) -> Iterator[dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = target(*args)
        except BaseException as exc:  # reported when joined
            out["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    try:
        yield out
    finally:
        thread.join()
        if "error" in out:
            raise out["error"]


KMS_PATHS = ("lean", "botocore")  # the default first


def decrypt_cpu(server: ModelServer, calls: int, repeats: int = 3) -> dict[str, float]:
    """Client CPU per Decrypt of each KMS path, in microseconds: the median of ``repeats``
    runs of ``calls`` sequential Decrypts each, the paths taking turns, pinned to one core."""
    table = Table.named("bench-1")
    ciphertexts = [
        base64.b64encode(HEADER + table.plaintext(i, 0)).decode() for i in range(calls + 20)
    ]
    runs: dict[str, list[float]] = {path: [] for path in KMS_PATHS}
    for _ in range(repeats):
        for path in KMS_PATHS:
            config = {
                **segment_config("bench-1", "", 0, 1, path),
                "function_credentials": FUNCTION_CREDENTIALS,
                "ciphertexts": ciphertexts,
            }
            row = run_scenario("kms-decrypt", config, server.endpoint, pinned=True)
            runs[path].append(1e6 * row["call_cpu_s"] / row["items"])
    return {path: statistics.median(values) for path, values in runs.items()}


# AccountB's key for REENCRYPT_ATTRIBUTES (the model answers GenerateDataKey for any key).
ATTRIBUTE_KEY_ARN = f"arn:aws:kms:{REGION}:222222222222:key/66666666-7777-8888-9999-000000000000"


def reencrypt_cpu(server: ModelServer, items: int, repeats: int = 2) -> dict[str, Any]:
    """Client CPU per item of one segment (``items`` of them, every ciphertext distinct) with
    REENCRYPT_ATTRIBUTES off and on (both encrypted attributes, under AccountB's key, the
    default cache), taking turns, pinned, on ``server``: the median of ``repeats`` each."""
    table = f"bench-{items * 2}"  # segment 0 of 2 holds ``items``
    runs: dict[str, list[float]] = {"off": [], "on": []}
    for repeat in range(repeats):
        for mode in runs:
            config = segment_config(table, f"reencrypt-{mode}-{repeat}", 0, 2)
            if mode == "on":
                config["lambda_env"] |= {
                    "REENCRYPT_ATTRIBUTES": ",".join(ENCRYPTED),
                    "DESTINATION_ATTRIBUTE_KEY_ARN": ATTRIBUTE_KEY_ARN,
                }
            before = server.stats()
            row = run_scenario("table-sync-segment", config, server.endpoint, pinned=True)
            after = server.stats()
            counted = "reencrypted_put" if mode == "on" else "plaintexts_put"
            if (
                after.get(counted, 0) - before.get(counted, 0) != row["items"]
                or row["items"] != items
            ):
                raise RuntimeError(f"re-encryption {mode}: not every item arrived as it should")
            runs[mode].append(1e6 * row["cpu_s"] / row["items"])
            data_keys = after.get("kms.GenerateDataKey", 0) - before.get("kms.GenerateDataKey", 0)
            print(
                f"  re-encryption {mode}: {runs[mode][-1]:.0f} us CPU per item, "
                f"{data_keys} GenerateDataKey",
                flush=True,
            )
    off, on = statistics.median(runs["off"]), statistics.median(runs["on"])
    return {"items": items, "runs_us": runs, "off_us": off, "on_us": on, "ratio": on / off}


def main() -> dict[str, Any]:
    scale_items = int(os.environ.get("BENCH_SCALE_ITEMS", "100000"))
    memory_items = [
        int(n) for n in os.environ.get("BENCH_MEMORY_ITEMS", "100000,1000000").split(",")
    ]
    naive_items = int(os.environ.get("BENCH_NAIVE_ITEMS", "5000"))
    floor_items = int(os.environ.get("BENCH_FLOOR_ITEMS", "5000"))
    decrypt_calls = int(os.environ.get("BENCH_DECRYPT_CALLS", "2000"))
    total = int(os.environ.get("BENCH_SEGMENTS", "4"))
    concurrency = int(Settings.model_fields["decrypt_concurrency"].default)
    latency = Latency()
    client_cpu, server_cpus = cpus()
    print(
        f"\nlatency model: Scan page {latency.scan * 1000:.0f} ms, Decrypt "
        f"{latency.decrypt * 1000:.0f} ms, BatchWriteItem {latency.batch_write * 1000:.0f} ms, "
        f"PutItem {latency.put_item * 1000:.0f} ms; measured processes pinned to core "
        f"{client_cpu} (taskset), model servers on {sorted(server_cpus)}",
        flush=True,
    )
    with ModelServer(0.0) as fast, ModelServer() as model, ModelServer() as naive_model:
        decrypt_us = decrypt_cpu(fast, decrypt_calls)
        print(
            "  client CPU per Decrypt: "
            + ", ".join(f"{path} {us:.0f} us" for path, us in decrypt_us.items()),
            flush=True,
        )
        floors = {path: measure_floor(fast, floor_items, path) for path in KMS_PATHS}
        reencrypt = reencrypt_cpu(model, int(os.environ.get("BENCH_REENCRYPT_ITEMS", "20000")))
        floor = floors["lean"]
        lean_floors: list[float] = []

        # Around a segment, the floor runs on half the segment's items (at least floor_items):
        # the runs before and after it then sample this VM's speed for as long as the segment
        # runs. On 5,000 items (4-5 s) two floors 30 s apart differed by up to 25%.
        around_items = max(floor_items, scale_items // total // 2)

        def lean_floor() -> float:
            """The lean floor again, right before or right after a throughput segment."""
            us = float(measure_floor(fast, around_items, "lean")["cpu_us_per_item"])
            lean_floors.append(us)
            return us

        # The naive script sleeps 90% of its time, so it runs beside the throughput segments,
        # on a server of its own, on the servers' cores (off the measured one).
        model_cpu0 = model.cpu_seconds()
        with in_background(
            functools.partial(run_scenario, beside_servers=True),
            "naive",
            baseline_config(f"bench-{naive_items}"),
            naive_model.endpoint,
        ) as naive_out:
            paired = run_paired(
                model, f"bench-{scale_items}", total, f"{scale_items}", KMS_PATHS, floor=lean_floor
            )
        model_cpu = model.cpu_seconds() - model_cpu0
        throughput, botocore = paired["lean"], paired["botocore"]
        naive = naive_out["result"]
        if naive_model.stats().get("items_put") != naive_items:
            raise RuntimeError("the naive script did not copy every item")
        print(f"  naive: {naive['items'] / naive['wall_s']:.0f} items/s", flush=True)

        mirror_items = int(os.environ.get("BENCH_MIRROR_ITEMS", "100000"))
        mirror = nightly(model, mirror_items, every=100, delete_every=1000)

        # Peak RSS against size needs no latency: two segments at a time, on the fast server.
        memory = {
            n: run_segments(fast, f"bench-{n}-pool1000", total, f"{n}-pool1000", parallel=2)
            for n in memory_items
        }
    naive["items_per_s"] = naive["items"] / naive["wall_s"]

    for rows in (throughput, botocore):
        for row in rows:
            row["latency_floor_s"] = latency_floor(row, latency, concurrency)
            row["cpu_floor_s"] = row["items"] * row["floor_us_per_item"] / 1e6
            row["wall_vs_floor"] = row["wall_s"] / max(row["latency_floor_s"], row["cpu_floor_s"])
            row["items_per_s"] = row["items"] / row["wall_s"]
            row["cpu_us_per_item"] = 1e6 * row["cpu_s"] / row["items"]
            row["cpu_vs_floor"] = row["cpu_us_per_item"] / row["floor_us_per_item"]
            row["speed_vs_naive"] = row["items_per_s"] / naive["items_per_s"]
    rss = {n: max(r["peak_rss_mb"] for r in rows) for n, rows in memory.items()}
    speedup = [
        lean["items_per_s"] / old["items_per_s"]
        for lean, old in zip(throughput, botocore, strict=True)
    ]
    result = {
        "latency_ms": {k: v * 1000 for k, v in vars(latency).items()},
        "segments": total,
        "decrypt_concurrency": concurrency,
        "pinned_cpu": client_cpu,
        "decrypt_cpu_us": decrypt_us,
        "decrypt_cpu_ratio": decrypt_us["lean"] / decrypt_us["botocore"],
        "floor": floor,
        "floors": floors,
        "lean_floors_us": lean_floors,
        "lean_floor_items": around_items,
        "naive": naive,
        "throughput": {"items": scale_items, "segments": throughput, "model_cpu_s": model_cpu},
        "throughput_botocore": {"items": scale_items, "segments": botocore},
        "items_per_s_ratio": speedup,
        "memory": {str(n): rows for n, rows in memory.items()},
        "peak_rss_mb": {str(n): v for n, v in rss.items()},
        "mirror": mirror,
        "reencrypt": reencrypt,
    }
    _print(result, scale_items)
    return result


def _span(values: Iterable[float]) -> str:
    ordered = sorted(values)
    return f"{ordered[0]:.0f}-{ordered[-1]:.0f}"


def _print(result: dict[str, Any], items: int) -> None:
    naive = result["naive"]
    decrypt = result["decrypt_cpu_us"]
    print(
        f"\nclient CPU per Decrypt (pinned, sequential, no latency): lean {decrypt['lean']:.0f} "
        f"us, botocore {decrypt['botocore']:.0f} us: lean / botocore "
        f"{result['decrypt_cpu_ratio']:.2f}x"
    )
    for label, key in (("lean (default)", "throughput"), ("botocore", "throughput_botocore")):
        rows = result[key]["segments"]
        print(
            f"\nKMS_CLIENT={label}: {items} items in {result['segments']} segments (one process "
            f"each, pinned to one core), every ciphertext distinct; the lean floor, measured "
            f"around each segment: {_span(r['floor_us_per_item'] for r in rows)} us CPU/item; "
            f"naive {naive['items_per_s']:.0f} items/s on {naive['items']} items"
        )
        header = (
            f"{'segment':<8}{'items':>7}{'pages':>6}{'wall s':>8}{'lat floor':>10}"
            f"{'CPU floor':>10}{'wall/floor':>11}{'CPU s':>7}{'CPU/floor':>10}{'items/s':>8}"
            f"{'x naive':>8}{'RSS MB':>7}{'KMS req':>8}"
        )
        print(header)
        print("-" * len(header))
        for r in rows:
            print(
                f"{r['segment']:<8}{r['items']:>7}{r['pages']:>6}{r['wall_s']:>8.1f}"
                f"{r['latency_floor_s']:>10.1f}{r['cpu_floor_s']:>10.1f}"
                f"{r['wall_vs_floor']:>11.2f}{r['cpu_s']:>7.1f}{r['cpu_vs_floor']:>10.2f}"
                f"{r['items_per_s']:>8.0f}{r['speed_vs_naive']:>8.1f}{r['peak_rss_mb']:>7.0f}"
                f"{r['kms_requests']:>8}"
            )
        slowest = max(r["wall_s"] for r in rows)
        print(f"run with one Lambda per segment: {slowest:.1f} s, {items / slowest:.0f} items/s")
    print(f"model server CPU, both paths: {result['throughput']['model_cpu_s']:.1f} s")
    ratios = ", ".join(f"{r:.2f}" for r in result["items_per_s_ratio"])
    print(f"items/s per segment, lean / botocore: {ratios}")
    sizes = ", ".join(f"{int(n):,} items {v:.0f} MB" for n, v in result["peak_rss_mb"].items())
    print(f"peak RSS per segment process (repeated ciphertexts): {sizes}")
    reencrypt = result["reencrypt"]
    print(
        f"\nREENCRYPT_ATTRIBUTES ({len(ENCRYPTED)} attributes an item, {reencrypt['items']:,} "
        f"items, one segment, pinned): CPU per item off {reencrypt['off_us']:.0f} us, on "
        f"{reencrypt['on_us']:.0f} us: on / off {reencrypt['ratio']:.2f}x"
    )
    mirror = result["mirror"]
    print(
        f"\nthe nightly mirror, {mirror['items']:,} items (one process, one segment): the full "
        f"first run, then {mirror['changed']:,} updated and {mirror['deleted']:,} deleted"
    )
    print(f"{'run':<9}{'wall s':>8}{'KMS req':>9}{'written':>9}{'deleted':>9}{'unchanged':>11}")
    for label in ("full", "nightly"):
        r = mirror[label]
        print(
            f"{label:<9}{r['wall_s']:>8.1f}{r['kms_requests']:>9}{r['items_written']:>9}"
            f"{r['items_swept']:>9}{r['items_unchanged']:>11}"
        )
    print(
        f"nightly / full: KMS requests {mirror['kms_ratio']:.1%}, wall time "
        f"{mirror['wall_ratio']:.1%}"
    )
