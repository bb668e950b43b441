"""`table-sync credentials`, `verify` and the progress display, as an operator uses them.

In this process (the ``cli`` fixture), except what needs a real process: `eval` of the
credentials in bash, the AWS CLI's credential_process, and progress on a pseudo-terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from table_sync_dev.local.accounts import ACCOUNT_A, REGION
from table_sync_dev.local.seed import EmbeddedAws
from table_sync_dev.local.server import MotoServer
from tests.conftest import ROOT

AWS_CLI = ROOT / ".tools" / "bin" / "aws"
CLI = [sys.executable, "-m", "table_sync_dev.cli"]


def _caller_env(aws: EmbeddedAws, tmp_path: Path, **extra: str) -> dict[str, str]:
    """An operator's shell: their own credentials in a profile, the embedded AWS as endpoint, and
    a stale session left in the environment by an earlier `eval` (which must be ignored)."""
    creds = aws.function_credentials()
    shared = tmp_path / "credentials"
    shared.write_text(
        "[default]\n"
        f"aws_access_key_id = {creds.access_key_id}\n"
        f"aws_secret_access_key = {creds.secret_access_key}\n"
        f"aws_session_token = {creds.session_token}\n"
    )
    return {
        "PATH": f"{AWS_CLI.parent}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "LOGNAME": "alice",
        "AWS_SHARED_CREDENTIALS_FILE": str(shared),
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": aws.endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ACCESS_KEY_ID": "ASIASTALESTALESTALE0",
        "AWS_SECRET_ACCESS_KEY": "stale",
        "AWS_SESSION_TOKEN": "stale-token",
        "SOURCE_ROLE_ARN": aws.reader_role_arn,
        "SOURCE_EXTERNAL_ID": aws.external_id or "",
        **extra,
    }


@pytest.fixture
def aws_cli() -> Path:
    if not AWS_CLI.exists():
        pytest.skip("the AWS CLI is not installed: run `make test`, which installs it")
    return AWS_CLI


@pytest.mark.items(2)
def test_eval_credentials_in_bash_gives_the_source_role(
    aws: EmbeddedAws, tmp_path: Path, aws_cli: Path
) -> None:
    env = _caller_env(aws, tmp_path)
    cli = " ".join(CLI)
    script = f'eval "$({cli} credentials)" && aws sts get-caller-identity --output json'
    result = subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    identity = json.loads(result.stdout)
    assert identity["Account"] == ACCOUNT_A
    assert identity["Arn"].endswith(
        ":assumed-role/table-sync-source-reader/alice@" + os.uname().nodename
    )

    printed = subprocess.run(
        [*CLI, "credentials"], env=env, capture_output=True, text=True, timeout=60, check=True
    ).stdout.splitlines()
    assert [line.split("=", 1)[0] for line in printed] == [
        "export AWS_ACCESS_KEY_ID",
        "export AWS_SECRET_ACCESS_KEY",
        "export AWS_SESSION_TOKEN",
    ]


@pytest.mark.items(2)
def test_json_output_works_as_a_credential_process(
    aws: EmbeddedAws, tmp_path: Path, aws_cli: Path
) -> None:
    env = _caller_env(aws, tmp_path)
    (tmp_path / "config").write_text(
        "[profile source]\n"
        f"credential_process = {' '.join(CLI)} credentials --format json --session-name from-profile\n"
    )
    clean = {
        k: v
        for k, v in env.items()
        if not k.startswith("AWS_ACCESS") and "SECRET" not in k and "SESSION_TOKEN" not in k
    }
    result = subprocess.run(
        [str(aws_cli), "sts", "get-caller-identity", "--profile", "source", "--output", "json"],
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["Arn"].endswith("/table-sync-source-reader/from-profile")


@pytest.mark.items(2)
def test_inherited_session_variables_are_cleared_before_assuming(
    aws: EmbeddedAws, tmp_path: Path, moto_server: MotoServer, cli
) -> None:
    """As the seed does: a shell holding an earlier session assumes with its own credentials."""
    env = _caller_env(aws, tmp_path)
    profile_key = aws_key_in(tmp_path / "credentials")
    for flags, signer in (([], profile_key), (["--keep-env"], "ASIASTALESTALESTALE0")):
        with moto_server.recording() as calls:
            assert cli(env, "credentials", *flags).exit_code == 0
        assert [(c.name, c.access_key) for c in calls] == [("sts:AssumeRole", signer)]


def aws_key_in(credentials_file: Path) -> str:
    line = next(
        row
        for row in credentials_file.read_text().splitlines()
        if row.startswith("aws_access_key_id")
    )
    return line.split("=", 1)[1].strip()


@pytest.mark.items(2)
def test_fish_output(aws: EmbeddedAws, tmp_path: Path, cli) -> None:
    env = _caller_env(aws, tmp_path)
    fish = cli(env, "credentials", "--format", "fish").stdout.splitlines()
    assert [line.split(" ")[:3] for line in fish] == [
        ["set", "-gx", "AWS_ACCESS_KEY_ID"],
        ["set", "-gx", "AWS_SECRET_ACCESS_KEY"],
        ["set", "-gx", "AWS_SESSION_TOKEN"],
    ]
    assert all(line.endswith("';") for line in fish)


@pytest.mark.items(2)
def test_a_refused_role_fails_without_secrets(aws: EmbeddedAws, tmp_path: Path, cli) -> None:
    env = _caller_env(
        aws,
        tmp_path,
        SOURCE_ROLE_ARN="arn:aws:iam::111111111111:role/x",
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
    )
    result = cli(env, "credentials")
    assert result.exit_code == 1
    assert "no AWS credentials to assume arn:aws:iam::111111111111:role/x" in result.stderr
    assert "stale" not in result.stderr


def test_verify_matches_then_names_the_differing_keys(aws: EmbeddedAws, cli) -> None:
    env = aws.lambda_env()
    assert cli(env, "run", "--json").exit_code == 0
    ok = cli(env, "verify", "--json")
    assert ok.exit_code == 0, ok.stderr
    assert json.loads(ok.stdout)["matches"] is True

    ddb = aws.account_b().client("dynamodb")
    ddb.update_item(
        TableName=aws.destination_table,
        Key={"pk": {"S": "customer#00003"}},
        UpdateExpression="SET ssn = :v",
        ExpressionAttributeValues={":v": {"S": "000-00-0000"}},
    )
    ddb.delete_item(TableName=aws.destination_table, Key={"pk": {"S": "customer#00007"}})
    ddb.put_item(TableName=aws.destination_table, Item={"pk": {"S": "stray"}})
    bad = cli(env, "verify", "--json")
    assert bad.exit_code == 1
    report = json.loads(bad.stdout)
    assert report["different"] == ['{pk=S:"customer#00003"}']
    assert report["missing"] == ['{pk=S:"customer#00007"}']
    assert report["unexpected"] == ['{pk=S:"stray"}']
    assert "000-00-0000" not in bad.stdout + bad.stderr
    expected_ssn = aws.expected["customer#00003"]["ssn"]["S"]
    assert expected_ssn not in bad.stdout + bad.stderr


def test_verify_an_s3_export(aws: EmbeddedAws, cli) -> None:
    env = aws.lambda_env(DESTINATION=f"s3://{aws.bucket}/snap", SOURCE_KEY_ATTRIBUTES="pk")
    assert cli(env, "run", "--json").exit_code == 0
    result = cli(env, "verify")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert result.stdout.startswith("result=match source_items=40 destination_items=40 ")


@pytest.mark.items(0)
def test_credentials_options_are_checked_as_run_checks_them(
    aws: EmbeddedAws, tmp_path: Path, cli
) -> None:
    """Before, a bad --role-arn or --duration reached botocore (ParamValidationError)."""
    env = _caller_env(aws, tmp_path)
    result = cli(env, "credentials", "--role-arn", "reader", "--duration", "60")
    assert result.exit_code == 1
    assert "--role-arn: must be an IAM role ARN" in result.stderr
    assert "--duration: must be 900 to 43200 seconds" in result.stderr
    env["SOURCE_ROLE_ARN"] = "arn:aws:iam::111111111111:user/bob"
    result = cli(env, "credentials")
    assert "SOURCE_ROLE_ARN: must be an IAM role ARN" in result.stderr


@pytest.mark.items(0)
def test_credentials_without_any_left_point_at_keep_env(aws: EmbeddedAws, tmp_path: Path) -> None:
    """Before: NoCredentialsError, after clearing an earlier session's variables, with no word
    of --keep-env."""
    env = _caller_env(aws, tmp_path, AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    result = subprocess.run(
        [*CLI, "credentials"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert ", after clearing the inherited AWS_ACCESS_KEY_ID" in result.stderr
    assert "--keep-env" in result.stderr


@pytest.mark.items(0)
def test_a_credential_process_that_runs_itself_is_refused(aws: EmbeddedAws, tmp_path: Path) -> None:
    """Before: a profile whose credential_process is `table-sync credentials`, used for that
    command's own credentials, nested processes without end (11 after 9 s)."""
    env = _caller_env(aws, tmp_path, AWS_PROFILE="loop")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        del env[name]
    (tmp_path / "config").write_text(
        f"[profile loop]\ncredential_process = {' '.join(CLI)} credentials --format json\n"
    )
    result = subprocess.run(
        [*CLI, "credentials"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    assert "calling itself" in result.stderr
    assert "source_profile" in result.stderr


@pytest.mark.items(6)
def test_verify_takes_the_options_run_takes(aws: EmbeddedAws, cli) -> None:
    """Before, verifying an s3:// copy needed SOURCE_KEY_ATTRIBUTES in the environment, which
    README called learned and verify had no option for."""
    env = aws.lambda_env()
    destination = f"s3://{aws.bucket}/verify-options"
    assert cli(env, "run", "--destination", destination, "--json").exit_code == 0
    unkeyed = cli(env, "verify", "--destination", destination)
    assert unkeyed.exit_code == 1
    assert "SOURCE_KEY_ATTRIBUTES: required" in unkeyed.stderr
    assert "--key-attributes" in unkeyed.stderr
    keyed = cli(env, "verify", "--destination", destination, "--key-attributes", "pk", "--json")
    assert keyed.exit_code == 0, keyed.stderr
    assert json.loads(keyed.stdout)["source_items"] == 6
    other = cli(env, "verify", "--table", "no-such-table", "--key-attributes", "pk")
    assert other.exit_code == 1
    assert "no-such-table" in other.stderr


def test_flags_take_no_value_in_the_help(cli) -> None:
    """Before, --dry-run, --full and --json were labelled <bool> as if they took a value."""
    result = cli({"COLUMNS": "120"}, "run", "--help")
    assert result.exit_code == 0
    lines = [line for line in result.stdout.splitlines() if "--dry-run" in line or "--full" in line]
    assert len(lines) == 2
    assert all("<bool>" not in line for line in lines)


@pytest.mark.items(0)
def test_a_failing_credential_process_is_reported_without_its_output(
    aws: EmbeddedAws, tmp_path: Path
) -> None:
    """Whatever a profile's credential_process printed (it may be a secret) stays out of the
    error; only that it failed is said."""
    env = _caller_env(aws, tmp_path, AWS_PROFILE="broken")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        del env[name]
    (tmp_path / "config").write_text(
        "[profile broken]\ncredential_process = sh -c 'echo leaked-token-1234 >&2; exit 1'\n"
    )
    result = subprocess.run(
        [*CLI, "credentials"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    assert "its credential_process failed" in result.stderr
    assert "leaked-token-1234" not in result.stderr
