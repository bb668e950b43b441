"""`table-sync run`: the same sync from a shell, with the caller's own credentials; and every
command's failures, which end in one line and a non-zero status, never a traceback."""

from __future__ import annotations

import json

import pytest

from table_sync.state import StateStore
from table_sync_dev.local.seed import EmbeddedAws
from table_sync_dev.local.server import MotoServer
from table_sync_dev.local.verify import differences, read_table
from tests.integration.conftest import CliResult

UNREACHABLE = "http://127.0.0.1:9"  # nothing listens there: connections are refused


def test_run_from_a_shell_copies_and_prints_a_json_summary(aws: EmbeddedAws, cli) -> None:
    result = cli({**aws.lambda_env(), "LOGNAME": "alice"}, "run", "--json", "--page-size", "15")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)  # stdout is the summary alone; logs go to stderr
    assert summary["items_written"] == 40
    assert summary["pages"] == 3
    assert summary["trigger"] == "backfill"
    copy = read_table(aws.account_b().client("dynamodb"), aws.destination_table)
    assert differences(aws.expected, copy) == []


def test_options_override_the_environment_and_errors_exit_non_zero(aws: EmbeddedAws, cli) -> None:
    result = cli(aws.lambda_env(), "run", "--session-duration", "7200")
    assert result.exit_code == 1
    assert (
        "--session-duration (SOURCE_SESSION_DURATION): must be 900 to 3600 seconds" in result.stderr
    )
    assert result.stdout == ""


def test_dry_run_writes_nothing_and_says_what_it_read(aws: EmbeddedAws, cli) -> None:
    result = cli(
        aws.lambda_env(), "run", "--dry-run", "--json", "--destination", f"s3://{aws.bucket}/dry"
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["dry_run"], summary["items_scanned"]) == (True, 40)
    objects = aws.account_b().client("s3").list_objects_v2(Bucket=aws.bucket)
    assert objects.get("KeyCount", 0) == 0


def _one_line_error(result: CliResult, *expected: str) -> None:
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # one line: no traceback
    assert lines[0].startswith("error: ")
    for text in expected:
        assert text in lines[0]


@pytest.mark.items(2)
@pytest.mark.parametrize("command", ["run", "verify"])
def test_a_missing_source_table_is_one_line_naming_the_setting(
    aws: EmbeddedAws, cli, command: str
) -> None:
    result = cli(aws.lambda_env(SOURCE_TABLE_NAME="no-such-table"), command)
    _one_line_error(result, "no-such-table", "ResourceNotFoundException", "SOURCE_TABLE_NAME")
    # The option that sets it too (before, only the variable: README promises both).
    assert "--table sets SOURCE_TABLE_NAME" in result.stderr
    given = cli(aws.lambda_env(), command, "--table", "no-such-table")
    _one_line_error(given, "no-such-table", "--table sets SOURCE_TABLE_NAME")


@pytest.mark.items(2)
@pytest.mark.parametrize("command", ["run", "verify"])
def test_a_missing_destination_table_is_one_line(aws: EmbeddedAws, cli, command: str) -> None:
    result = cli(aws.lambda_env(DESTINATION="dynamodb://no-such-copy"), command)
    _one_line_error(result, "no-such-copy", "ResourceNotFoundException")


@pytest.mark.items(2)
def test_a_missing_state_table_is_one_line_naming_the_setting(aws: EmbeddedAws, cli) -> None:
    result = cli(aws.lambda_env(STATE_TABLE="no-such-state"), "run")
    _one_line_error(result, "STATE_TABLE no-such-state", "ResourceNotFoundException")


@pytest.mark.items(2)
@pytest.mark.parametrize("command", [["run"], ["verify"], ["credentials", "--keep-env"]])
def test_an_unreachable_endpoint_is_one_line(
    aws: EmbeddedAws, cli, command: list[str], no_retry_delay: None
) -> None:
    """botocore retries the refused connections (without waiting here), then gives up."""
    result = cli({**aws.lambda_env(), "AWS_ENDPOINT_URL": UNREACHABLE}, *command)
    # Where nothing answered and the setting that named it (before: the error's name alone).
    _one_line_error(result, "EndpointConnectionError", f"nothing answers at {UNREACHABLE}")
    assert "AWS_ENDPOINT_URL names it" in result.stderr


@pytest.mark.items(2)
def test_a_required_setting_names_its_option(aws: EmbeddedAws, cli) -> None:
    """Before: `ENCRYPTED_ATTRIBUTES: required but not set`, and no word of the option."""
    env = {k: v for k, v in aws.lambda_env().items() if k != "ENCRYPTED_ATTRIBUTES"}
    result = cli(env, "run")
    _one_line_error(result, "ENCRYPTED_ATTRIBUTES: required but not set")
    assert "--encrypted-attributes sets ENCRYPTED_ATTRIBUTES" in result.stderr


@pytest.mark.items(2)
def test_a_bucket_that_does_not_exist_is_said_so(
    aws: EmbeddedAws, cli, moto_server: MotoServer
) -> None:
    """Before: `PutObject ... failed: AccessDenied` and nothing else. With IAM enforced (as in
    AWS) a bucket the policy does not name is AccessDenied whether or not it exists; without,
    the embedded S3 says NoSuchBucket. Each names DESTINATION and the option."""
    missing = cli(aws.lambda_env(), "run", "--destination", "s3://no-such-bucket-t0/x")
    _one_line_error(missing, "s3://no-such-bucket-t0/x", "there is no bucket no-such-bucket-t0")
    assert "--destination sets DESTINATION" in missing.stderr
    with moto_server.iam_enforced():
        denied = cli(aws.lambda_env(), "run", "--destination", "s3://no-such-bucket-t0/x")
    _one_line_error(denied, "AccessDenied (the bucket no-such-bucket-t0 does not exist, or these")
    assert "--destination sets DESTINATION" in denied.stderr


@pytest.mark.items(2)
def test_state_table_region_and_quarantine_have_options(aws: EmbeddedAws, cli) -> None:
    env = {k: v for k, v in aws.lambda_env().items() if k not in ("STATE_TABLE", "QUARANTINE")}
    result = cli(
        env,
        "run",
        "--json",
        *("--state-table", aws.state_table),
        *("--quarantine", f"s3://{aws.bucket}/quarantine"),
        *("--region", "eu-west-1"),
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["quarantine"].startswith(f"s3://{aws.bucket}/quarantine/")
    # The state table holds the run: the next run knows how many items to expect.
    record = (
        aws.account_b()
        .client("dynamodb")
        .get_item(TableName=aws.state_table, Key={"id": {"S": f"source#{aws.source_table_arn}"}})
    )
    assert record["Item"]["items"]["N"] == "2"
    store = StateStore(aws.account_b().client("dynamodb"), aws.state_table)
    assert store.source_items(aws.source_table_arn) == 2
    assert store.source_items(f"{aws.source_table_arn}-never-run") is None
    bad = cli(env, "run", "--region", "mars")
    _one_line_error(bad, "--region (SOURCE_REGION)")


def test_version(cli) -> None:
    from importlib.metadata import version

    result = cli({}, "--version")
    assert result.exit_code == 0
    assert result.stdout == f"table-sync {version('table-sync')}\n"


@pytest.mark.items(3)
def test_the_summary_says_where_the_quarantine_is_and_what_it_holds(aws: EmbeddedAws, cli) -> None:
    """Before, the table printed the location alone, and `-` with no quarantine."""
    env = {**aws.lambda_env(), "COLUMNS": "200"}
    used = cli(env, "run")  # in a pipe: one line (the table is the terminal's, test_cli_tty)
    assert used.exit_code == 0, used.stderr
    assert f" quarantine=dynamodb://{aws.quarantine_table}" in used.stdout
    assert " items_quarantined=0 " in used.stdout
    failing = cli({**env, "ON_DECRYPT_ERROR": "fail"}, "run")
    assert failing.stdout.rstrip().endswith(" quarantine=none")


@pytest.mark.items(0)
def test_a_bad_option_is_named_as_the_option(aws: EmbeddedAws, cli) -> None:
    """Before, `--page-size 0` was reported as PAGE_SIZE alone, a variable the user never set."""
    result = cli(aws.lambda_env(), "run", "--page-size", "0", "--destination", "ftp://x")
    assert result.exit_code == 1
    assert "--page-size (PAGE_SIZE): " in result.stderr
    assert "--destination (DESTINATION): " in result.stderr
    from_env = cli(aws.lambda_env(PAGE_SIZE="0"), "run")
    assert "PAGE_SIZE: " in from_env.stderr
    assert "--page-size (PAGE_SIZE)" not in from_env.stderr  # the variable was what was set
    assert "--page-size sets PAGE_SIZE" in from_env.stderr
