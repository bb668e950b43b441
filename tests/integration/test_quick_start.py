"""README's quick start, run as it stands, and the embedded AWS it starts enforcing IAM.

The block between README's quick-start markers is pasted into bash (``-e``: every step must
succeed) in the project directory, with a clean environment: no AWS variables, no AWS config
files, so every request it makes goes to the endpoint `local-aws --detach` hands out. Only the
port and the directory for local-aws's files are chosen by the test (``LOCAL_AWS_PORT``,
``LOCAL_AWS_DIR``), so a local-aws of your own on port 5000 is left alone.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from table_sync_dev.local.server import free_port

ROOT = Path(__file__).resolve().parents[2]
TABLE_SYNC = ROOT / ".venv" / "bin" / "table-sync"


def quick_start_block() -> str:
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- quick-start -->\n```sh\n(.*?)```\n<!-- /quick-start -->", readme, re.S)
    assert found, "README has no quick-start block between its markers"
    return found.group(1)


def clean_env(directory: Path, port: int) -> dict[str, str]:
    """A fresh shell's environment: nothing of AWS's, nothing of the test run's."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(directory),
        "LANG": "C.UTF-8",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
        "LOCAL_AWS_PORT": str(port),
        "LOCAL_AWS_DIR": str(directory),
    }


def bash(
    script: str, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-e", "-c", script],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def stop(env: dict[str, str]) -> None:
    subprocess.run([str(TABLE_SYNC), "local-aws", "--stop"], env=env, check=False, timeout=60)


def test_readme_quick_start_runs_as_written(tmp_path: Path) -> None:
    env = clean_env(tmp_path, free_port())
    try:
        result = bash(quick_start_block(), env)
    finally:
        stop(env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # Two runs, each writing all 120 items, and two verifies that match (in a pipe, as here,
    # each prints one line of key=value pairs).
    assert len(re.findall(r"^status=succeeded .* items_written=120 ", result.stdout, re.M)) == 2
    assert len(re.findall(r"^result=match source_items=120 ", result.stdout, re.M)) == 2, output
    assert "s3://table-sync-copy-222222222222/exports/my-table/AWSDynamoDB/" in result.stdout
    assert "stopped local-aws" in result.stderr
    # The host settings were also written for other shells, readable by their owner only.
    host_env = tmp_path / "local-aws.env"
    assert oct(host_env.stat().st_mode & 0o777) == "0o600"
    assert not (tmp_path / "local-aws.pid").exists()


@pytest.fixture(scope="module")
def local_aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A detached local-aws, and the settings it printed for a host shell."""
    directory = tmp_path_factory.mktemp("local-aws")
    env = clean_env(directory, free_port())
    try:
        started = subprocess.run(
            [str(TABLE_SYNC), "local-aws", "--detach", "--items", "20"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=180,
            check=True,
        )
        settings = dict(env)
        for line in started.stdout.splitlines():
            if line.startswith("export "):
                name, value = line.removeprefix("export ").split("=", 1)
                settings[name] = shlex.split(value)[0]
        yield settings
    finally:
        stop(env)


def table_sync(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TABLE_SYNC), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_a_second_detach_is_refused_while_one_runs(local_aws: dict[str, str]) -> None:
    again = table_sync(local_aws, "local-aws", "--detach")
    assert again.returncode == 1
    assert "already running" in again.stderr
    assert "table-sync local-aws --stop" in again.stderr


def test_local_aws_refuses_a_wrong_external_id(local_aws: dict[str, str]) -> None:
    """Before, the embedded AWS of local-aws and the demo enforced nothing: this succeeded."""
    result = table_sync(local_aws, "run", "--external-id", "not-the-shared-secret")
    assert result.returncode == 1
    assert "cannot assume SOURCE_ROLE_ARN" in result.stderr
    assert "ExternalId" in result.stderr


def test_local_aws_refuses_a_role_that_does_not_trust_the_caller(
    local_aws: dict[str, str],
) -> None:
    # The function role trusts only Lambda: not a reader role the operator may assume.
    role = "arn:aws:iam::222222222222:role/table-sync-function"
    result = table_sync(local_aws, "run", "--role-arn", role, "--dry-run")
    assert result.returncode == 1
    assert f"cannot assume SOURCE_ROLE_ARN {role}" in result.stderr


def test_local_aws_reader_may_only_read_the_table_and_decrypt(local_aws: dict[str, str]) -> None:
    """The reader role holds exactly the runbook's actions: listing tables is refused."""
    result = table_sync(local_aws, "credentials", "--format", "json")
    assert result.returncode == 0, result.stderr
    creds = json.loads(result.stdout)
    reader = boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=local_aws["AWS_REGION"],
    ).client("dynamodb", endpoint_url=local_aws["AWS_ENDPOINT_URL"])
    assert reader.scan(TableName=local_aws["SOURCE_TABLE_NAME"])["Count"] == 20
    with pytest.raises(ClientError) as refused:
        reader.list_tables()
    assert "not authorized to perform: dynamodb:ListTables" in str(refused.value)
