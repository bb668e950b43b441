"""`make bench`'s scale half, at a size CI can afford: the latency model answers the calls a sync
makes, and a segmented run through it copies every item, decrypted, once.

Timings are not asserted here (they belong to `make bench`); what is asserted is what a reader
of the benchmark relies on: the model's table is what the floor and table-sync read, every item
arrives, and the client's and the model's counts of Decrypts agree.
"""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest

from bench import multiplexed, scale
from bench.latency_model import HEADER, Table


@pytest.fixture(scope="module")
def fast_model() -> Iterator[scale.ModelServer]:
    with scale.ModelServer(0.0) as server:
        yield server


def test_model_table_decrypts_to_its_plaintexts_and_segments_partition_it(
    fast_model: scale.ModelServer,
) -> None:
    session = boto3.Session(
        aws_access_key_id="AKIABENCH", aws_secret_access_key="x", region_name="eu-west-1"
    )
    ddb = session.client("dynamodb", endpoint_url=fast_model.endpoint)
    kms = session.client("kms", endpoint_url=fast_model.endpoint)
    keys: list[str] = []
    for segment in range(3):
        pages = ddb.get_paginator("scan").paginate(
            TableName="bench-250", Segment=segment, TotalSegments=3, Limit=40
        )
        for page in pages:
            keys.extend(item["pk"]["S"] for item in page["Items"])
    assert sorted(keys) == [f"item#{n:07d}" for n in range(250)]
    item = ddb.scan(TableName="bench-250", Limit=1)["Items"][0]
    blob = item["ssn"]["B"]
    assert blob.startswith(HEADER)
    plaintext = kms.decrypt(CiphertextBlob=blob, KeyId=scale.KEY_ARN)["Plaintext"]
    assert plaintext == Table.named("bench-250").plaintext(0, 0)
    with pytest.raises(kms.exceptions.InvalidCiphertextException):
        kms.decrypt(CiphertextBlob=b"not a ciphertext", KeyId=scale.KEY_ARN)


def test_a_segmented_table_sync_run_copies_every_item_decrypted(
    fast_model: scale.ModelServer,
) -> None:
    rows = scale.run_segments(fast_model, "bench-600", 3, "ci")
    assert [r["segment"] for r in rows] == [0, 1, 2]
    assert sum(r["items"] for r in rows) == 600
    assert sum(r["kms_requests"] for r in rows) == 1200  # two distinct ciphertexts an item
    assert all(r["peak_rss_mb"] > 0 and r["pages"] >= 1 for r in rows)


def test_a_paired_run_copies_the_table_once_with_each_kms_path(
    fast_model: scale.ModelServer,
) -> None:
    """`make bench` measures the two KMS paths segment by segment; each path's run still
    copies every item, decrypted (run_segment checks the model's counts per segment)."""
    floors = iter([1.0, 2.0, 3.0, 4.0, 5.0])  # the floor's figures, in the order measured
    rows = scale.run_paired(
        fast_model, "bench-300", 2, "ci-paired", ("lean", "botocore"), floor=lambda: next(floors)
    )
    for path in ("lean", "botocore"):
        assert [r["segment"] for r in rows[path]] == [0, 1]
        assert sum(r["items"] for r in rows[path]) == 300
        assert sum(r["model_decrypts"] for r in rows[path]) == 600
    # Run lean 0, botocore 0, botocore 1, lean 1: each held to the floors just before and just
    # after it, one floor run between two segments.
    assert [r["floor_us_per_item"] for r in rows["lean"]] == [1.5, 4.5]
    assert [r["floor_us_per_item"] for r in rows["botocore"]] == [2.5, 3.5]


def test_the_multiplexed_experiment_measures_real_decrypts(
    fast_model: scale.ModelServer,
) -> None:
    """bench/multiplexed.py's figures are per Decrypt: every mode sends each ciphertext once
    a round and gets the model's plaintext back (measure raises otherwise)."""
    before = fast_model.stats().get("kms.Decrypt", 0)
    result = multiplexed.measure(fast_model.endpoint, fast_model.endpoint, 1, 40, 4)
    assert set(result) == set(multiplexed.MODES)
    assert all(row["cpu_us"] > 0 for row in result.values())
    rounds = 2  # the warm-up round and one measured
    assert fast_model.stats()["kms.Decrypt"] - before == rounds * len(multiplexed.MODES) * 40


def test_the_floor_decrypts_every_ciphertext_once_on_either_path(
    fast_model: scale.ModelServer,
) -> None:
    """The floor as part 1 runs it (botocore's clients, no function environment) and as the
    scale half runs it (the lean clients, a page's Decrypts at once). The first failed in
    `make bench` when the lean floor began reading DECRYPT_CONCURRENCY from an environment
    part 1 does not pass."""
    before = fast_model.stats().get("kms.Decrypt", 0)
    plain = scale.run_scenario("floor", scale.baseline_config("bench-300"), fast_model.endpoint)
    lean = scale.measure_floor(fast_model, 300, "lean")
    assert plain["items"] == lean["items"] == 300
    assert plain["kms_requests"] == lean["kms_requests"] > 300  # two attributes, some absent
    assert fast_model.stats()["kms.Decrypt"] - before == 2 * lean["kms_requests"]


def test_repeated_ciphertexts_are_decrypted_once_each(fast_model: scale.ModelServer) -> None:
    rows = scale.run_segments(fast_model, "bench-900-pool50", 2, "ci-pool", parallel=2)
    assert sum(r["items"] for r in rows) == 900
    # Each segment process has its own cache: at most the 100 distinct ciphertexts each.
    assert all(r["kms_requests"] <= 100 for r in rows)


def test_the_nightly_mirror_case_pays_for_the_changes_only(
    fast_model: scale.ModelServer,
) -> None:
    """The bench's nightly case at CI size: after 1 item in 50 is updated and 1 in 500
    deleted, the second run decrypts only the updated items' ciphertexts, writes them, deletes
    the deleted ones (the model's own counts agree: nightly() checks them)."""
    result = scale.nightly(fast_model, 2_000, every=50, delete_every=500)
    assert result["changed"] == 40 - 4  # 4 of the 40 updated items are deleted as well
    assert result["deleted"] == 4
    assert result["nightly"]["kms_requests"] == 2 * 36  # two encrypted attributes each
    assert result["nightly"]["items_unchanged"] == 2_000 - 40
    assert result["full"]["kms_requests"] == 2 * 2_000
