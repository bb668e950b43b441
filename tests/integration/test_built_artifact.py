"""The artifact `sam build` makes, run as Lambda would: no Docker engine exists here, so each
event in events/ is sent to the built handler in a clean python3.13 whose import path holds only
the build directory (proving the package is complete), against the embedded AWS.

template.yaml deploys arm64; its compiled wheels (pydantic-core, cryptography) cannot load on
this x86_64 machine, so the test builds the same template with Architecture=x86_64.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from table_sync_dev.local.container import PYENV
from table_sync_dev.local.seed import DESTINATION_BUCKET, EmbeddedAws
from tests.conftest import EVENT_FILES, ROOT

# With the container tests: one worker makes the x86_64 build (see test_sam_local_invoke.py).
pytestmark = pytest.mark.xdist_group("sam-build")

INVOKE = r"""
import json, sys
build_dir, event_file = sys.argv[1], sys.argv[2]
sys.path.insert(0, build_dir)
assert not any("site-packages" in p for p in sys.path), sys.path
try:
    import moto  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("moto is in the artifact")

class Context:
    function_name = "table-sync"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:222222222222:function:table-sync"
    memory_limit_in_mb = 512
    aws_request_id = "built-artifact-test"
    log_group_name = "/aws/lambda/table-sync"
    log_stream_name = "test"
    def get_remaining_time_in_millis(self):
        return 900_000

from table_sync.handler import lambda_handler
from table_sync.aws import kms_lean
import table_sync
assert table_sync.__file__.startswith(build_dir), table_sync.__file__
lean_calls = []
_decrypt = kms_lean.LeanKmsClient.decrypt
_decrypt_many = kms_lean.LeanKmsClient.decrypt_many
def counted(self, **kwargs):  # spies: count the Decrypts the lean path sends, one at a time
    lean_calls.append(1)
    return _decrypt(self, **kwargs)
def counted_many(self, requests, *args, **kwargs):  # and a page's at once
    lean_calls.extend([1] * len(requests))
    return _decrypt_many(self, requests, *args, **kwargs)
kms_lean.LeanKmsClient.decrypt = counted
kms_lean.LeanKmsClient.decrypt_many = counted_many
from table_sync.aws import dynamodb_lean
lean_ddb = {"scan": 0, "batch_write_item": 0}
def spy(name):  # counts the Scans and BatchWriteItems the lean DynamoDB path sends
    original = getattr(dynamodb_lean.LeanDynamoDBClient, name)
    def call(self, **kwargs):
        lean_ddb[name] += 1
        return original(self, **kwargs)
    setattr(dynamodb_lean.LeanDynamoDBClient, name, call)
for name in lean_ddb:
    spy(name)
result = lambda_handler(json.load(open(event_file)), Context())
native = sys.modules["_awscrt"].__file__
assert native.startswith(build_dir), native
print("LEAN " + json.dumps(len(lean_calls)))
print("LEAN_DDB " + json.dumps(lean_ddb))
development = sorted(
    m for m in sys.modules if m.split(".")[0] in ("table_sync_dev", "typer", "rich", "moto")
)
assert not development, development
print("SUMMARY " + json.dumps(result))
"""


@pytest.fixture(scope="module")
def build_dir(x86_64_build: Path) -> Path:
    return x86_64_build / "SyncFunction"


# What the artifact holds of table-sync itself: the runtime, and nothing of dev/ (the CLI, the
# embedded AWS, the demo). A new module belongs here once it is meant to ship.
SHIPPED = {
    "__init__.py",
    "aws",
    "changes.py",
    "compare.py",
    "concurrency.py",
    "errors.py",
    "formats",
    "function.py",
    "handler.py",
    "items.py",
    "models",
    "observability.py",
    "pipeline",
    "quarantine.py",
    "runs.py",
    "shaping",
    "sinks",
    "source_keys.py",
    "state.py",
    "transforms.py",
    "verify.py",
}


def _installed_top_level(build_dir: Path) -> set[str]:
    """The top-level names the requirements' packages installed (from their RECORD files)."""
    names = set()
    for record in build_dir.glob("*.dist-info/RECORD"):
        names |= {
            line.split("/", 1)[0].split(",", 1)[0] for line in record.read_text().splitlines()
        }
    return names


@pytest.mark.slow
def test_the_artifact_ships_the_runtime_only(build_dir: Path) -> None:
    package = build_dir / "table_sync"
    shipped = {p.name for p in package.iterdir() if p.name != "__pycache__"}
    assert shipped == SHIPPED
    ours = {p.name for p in build_dir.iterdir()} - _installed_top_level(build_dir)
    assert ours == {"table_sync", "requirements.txt"}
    assert not (build_dir / "table_sync_dev").exists()


def _printed(stdout: str, label: str) -> Any:
    """The JSON the invoke script printed on its line starting with ``label``."""
    return json.loads(stdout.split(f"{label} ", 1)[1].split("\n", 1)[0])


@pytest.mark.slow
@pytest.mark.items(10)
@pytest.mark.parametrize("event_file", EVENT_FILES)
def test_built_handler_runs_every_event(event_file: str, build_dir: Path, aws: EmbeddedAws) -> None:
    assert (build_dir / "table_sync" / "handler.py").exists()
    python = shutil.which("python3.13", path=os.environ["PATH"]) or "python3.13"
    env = {
        "PATH": os.environ["PATH"],
        **PYENV,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
        **aws.lambda_env(),
    }
    result = subprocess.run(
        [python, "-I", "-S", "-c", INVOKE, str(build_dir), str(ROOT / "events" / event_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd="/",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = _printed(result.stdout, "SUMMARY")
    assert summary["status"] == "succeeded"
    # KMS_CLIENT's default: every Decrypt went through the lean path, on the artifact's awscrt.
    assert _printed(result.stdout, "LEAN") == summary["kms_requests"]
    # DYNAMODB_CLIENT's default: the scan (and a DynamoDB copy's writes) went lean too.
    lean_ddb = _printed(result.stdout, "LEAN_DDB")
    assert lean_ddb["scan"] >= summary["pages"] >= 1, lean_ddb  # the source (and a sweep)
    assert summary["items_scanned"] == 10
    expected_written = 0 if "dry-run" in event_file else 10
    if expected_written and event_file != "backfill-s3.json":
        assert lean_ddb["batch_write_item"] >= 1, lean_ddb
    assert summary["items_written"] == expected_written
    if event_file == "backfill-s3.json":
        assert summary["location"].startswith(
            f"s3://{DESTINATION_BUCKET}/exports/my-table/AWSDynamoDB/"
        )


ELF_MACHINE = {62: "x86_64", 183: "arm64"}


def _elf_machine(path: Path) -> str:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", path
    return ELF_MACHINE.get(int.from_bytes(header[18:20], "little"), "unknown")


@pytest.mark.slow
def test_each_architectures_artifact_carries_awscrt_built_for_it(build_dir: Path) -> None:
    """The lean KMS path's native part (awscrt) in each artifact is for that architecture:
    the x86_64 build here, and template.yaml's arm64 build (`make build`, which `make test`
    runs first), which this machine cannot load."""
    assert _elf_machine(build_dir / "_awscrt.abi3.so") == "x86_64"
    arm64 = ROOT / ".aws-sam" / "build" / "SyncFunction" / "_awscrt.abi3.so"
    if not arm64.exists():
        pytest.skip("no arm64 build: run `make build` (make test does)")
    assert _elf_machine(arm64) == "arm64"
