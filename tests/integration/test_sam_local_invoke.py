"""The built function in a real Lambda container: `sam build`, then `sam local invoke
SyncFunction` with the events in events/, against `table-sync local-aws` (IAM enforced), each
copy checked with `table-sync verify` as a user would.

The container is SAM CLI's own: its emulator on a base image built here (no registry is
reachable: ``table_sync_dev.local.lambda_image``), on the host network (these machines' Docker
has no bridge: ``table_sync_dev.local.sam_host_network``). A machine without a Docker daemon
skips these tests with the reason; CI (``CI=true``) starts one and fails them instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from table_sync_dev.local.container import (
    sam_local_invoke,
    start_local_aws,
    stop_local_aws,
    verify,
)
from table_sync_dev.local.lambda_image import docker_unavailable, ensure_base_image
from table_sync_dev.local.seed import DESTINATION_BUCKET
from tests.conftest import EVENTS_DIR

# One worker runs every test of the sam-build group: the x86_64 build is made once, and the
# containers, on the host network, never run two at a time (they share the emulator's port).
pytestmark = [pytest.mark.container, pytest.mark.xdist_group("sam-build")]
ITEMS = 30


@pytest.fixture(scope="module")
def base_image() -> str:
    reason = docker_unavailable()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI runs the container tests, but {reason}")
        pytest.skip(reason)
    return ensure_base_image("x86_64")


@pytest.fixture(scope="module")
def local_aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`table-sync local-aws --detach` on loopback (a host-network container reaches it there),
    with env.json and the function role's credentials for sam local."""
    directory = tmp_path_factory.mktemp("local-aws")
    start_local_aws(directory, ITEMS)
    yield directory
    stop_local_aws(directory)


@pytest.fixture(scope="module")
def template(x86_64_build: Path, base_image: str) -> Path:
    del base_image  # built before the first invoke
    return x86_64_build / "template.yaml"


def test_the_scheduled_event_makes_an_exact_copy_in_a_container(
    template: Path, local_aws: Path
) -> None:
    summary = sam_local_invoke(template, EVENTS_DIR / "scheduled-event.json", local_aws)
    assert summary["status"] == "succeeded"
    assert summary["trigger"] == "schedule"
    assert summary["items_written"] == ITEMS
    checked = verify(local_aws, "--json")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    result = json.loads(checked.stdout)
    assert (result["matches"], result["source_items"], result["destination_items"]) == (
        True,
        ITEMS,
        ITEMS,
    )


def test_a_backfill_into_s3_writes_an_export_verify_reads(template: Path, local_aws: Path) -> None:
    summary = sam_local_invoke(template, EVENTS_DIR / "backfill-s3.json", local_aws)
    destination = f"s3://{DESTINATION_BUCKET}/exports/my-table"
    assert summary["status"] == "succeeded"
    assert summary["destination"] == destination
    assert summary["items_written"] == ITEMS
    checked = verify(local_aws, "--destination", destination)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_one_segment_step_runs_in_a_container(template: Path, local_aws: Path) -> None:
    summary = sam_local_invoke(template, EVENTS_DIR / "segment.json", local_aws)
    assert summary["status"] == "succeeded"  # a run of one segment is finalized by its step
    assert (summary["segment"], summary["total_segments"]) == (0, 1)
    assert summary["items_scanned"] == ITEMS
    checked = verify(local_aws)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_reencryption_runs_in_the_lambda_runtime(
    template: Path, local_aws: Path, tmp_path: Path
) -> None:
    """Issue 30: the Encryption SDK (and cryptography's native code under it) in the runtime's
    container, from the built artifact. The attribute key here is the stack's copy key, on which
    the deployed role already has kms:GenerateDataKey; a deployment names its own
    (DestinationAttributeKeyArn or CreateAttributeKey)."""
    env = json.loads((local_aws / "env.json").read_text())
    function = next(iter(env))
    env[function] |= {
        "REENCRYPT_ATTRIBUTES": "ssn",
        "DESTINATION_ATTRIBUTE_KEY_ARN": env[function]["DESTINATION_KMS_KEY_ARN"],
        "SOURCE_KEY_ATTRIBUTES": "pk",
    }
    directory = tmp_path / "local-aws"
    directory.mkdir()
    for name in os.listdir(local_aws):
        if name != "env.json":
            (directory / name).symlink_to(local_aws / name)
    (directory / "env.json").write_text(json.dumps(env))
    event = tmp_path / "backfill.json"
    destination = f"s3://{DESTINATION_BUCKET}/exports/my-table/reencrypted"
    event.write_text(json.dumps({"trigger": "backfill", "destination": destination}))
    summary = sam_local_invoke(template, event, directory)
    assert summary["status"] == "succeeded"
    assert summary["items_written"] == ITEMS
    assert summary["destination_kms_requests"] == 1  # one data key for every ssn
