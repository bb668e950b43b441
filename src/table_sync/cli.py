"""``table-sync``: run the same sync from a shell, with the caller's own credentials.

Every option falls back to the environment variable of the same setting (the Lambda's names), so
``SOURCE_ROLE_ARN=... table-sync run`` and ``table-sync run --role-arn ...`` are the same run.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import socket
import sys
from typing import Annotated, Any

import boto3
import typer
from rich.console import Console
from rich.table import Table

from table_sync.aws.sts import session_name
from table_sync.errors import TableSyncError
from table_sync.models import Invocation, Settings, SyncSummary
from table_sync.service import apply_invocation, sync

app = typer.Typer(
    help="Copy a DynamoDB table with KMS-encrypted attributes from another account, decrypted.",
    no_args_is_help=True,
    add_completion=False,
)
err = Console(stderr=True)


def _seed_session_name() -> str:
    """The runbook's ``$LOGNAME@host``."""
    user = os.environ.get("LOGNAME") or getpass.getuser()
    return session_name(f"{user}@{socket.gethostname()}")


@app.command()
def run(
    role_arn: Annotated[
        str | None, typer.Option(help="SOURCE_ROLE_ARN: the AccountA reader role.")
    ] = None,
    table: Annotated[str | None, typer.Option(help="SOURCE_TABLE_NAME (default my-table).")] = None,
    kms_key_arn: Annotated[str | None, typer.Option(help="SOURCE_KMS_KEY_ARN.")] = None,
    encrypted_attributes: Annotated[
        str | None, typer.Option(help="ENCRYPTED_ATTRIBUTES, comma-separated.")
    ] = None,
    destination: Annotated[
        str | None, typer.Option(help="DESTINATION: dynamodb://<table> or s3://<bucket>/<prefix>.")
    ] = None,
    external_id: Annotated[str | None, typer.Option(help="SOURCE_EXTERNAL_ID.")] = None,
    session_duration: Annotated[
        int | None, typer.Option(help="SOURCE_SESSION_DURATION, 900-3600 seconds.")
    ] = None,
    page_size: Annotated[int | None, typer.Option(help="PAGE_SIZE (Scan Limit).")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Scan and decrypt; write nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Run one sync now (a backfill from a laptop): assume the source role with your credentials."""
    overrides: dict[str, Any] = {
        "source_role_arn": role_arn,
        "source_table_name": table,
        "source_kms_key_arn": kms_key_arn,
        "encrypted_attributes": encrypted_attributes,
        "destination": destination,
        "source_external_id": external_id,
        "source_session_duration": session_duration,
        "page_size": page_size,
        "dry_run": dry_run or None,
    }
    _quiet_logs()
    try:
        settings = Settings.from_env(os.environ, **overrides)
        invocation = Invocation(trigger="backfill", dry_run=settings.dry_run)
        summary = sync(
            apply_invocation(settings, invocation),
            invocation,
            base_session=boto3.Session(),
            role_session_name=_seed_session_name(),
        )
    except TableSyncError as exc:
        err.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False, soft_wrap=True)
        raise typer.Exit(code=1) from None
    if as_json:
        typer.echo(json.dumps(summary.model_dump(mode="json"), indent=2))
    else:
        Console().print(_summary_table(summary))


def _quiet_logs() -> None:
    """The run's JSON log lines go to stderr (stdout is the summary), warnings and up by default."""
    from table_sync.observability import logger

    handler = logger.registered_handler
    if isinstance(handler, logging.StreamHandler):
        handler.setStream(sys.stderr)
    logger.setLevel(os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"))


def _summary_table(summary: SyncSummary) -> Table:
    table = Table(title="table-sync run", show_header=False)
    for name, value in summary.model_dump(mode="json").items():
        table.add_row(name.replace("_", " "), str(value))
    return table


@app.command()
def demo() -> None:
    """Run the demo: the real sync on the embedded two-account AWS (needs the dev dependencies)."""
    from table_sync.local.demo import main as demo_main

    raise typer.Exit(code=demo_main())


def main() -> None:
    app()
