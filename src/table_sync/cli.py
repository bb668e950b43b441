"""``table-sync``: run the same sync from a shell, with the caller's own credentials.

Every option falls back to the environment variable of the same setting (the Lambda's names), so
``SOURCE_ROLE_ARN=... table-sync run`` and ``table-sync run --role-arn ...`` are the same run.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import os
import shlex
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


@app.command("local-aws")
def local_aws(
    port: Annotated[int, typer.Option(help="Port for the embedded AWS.")] = 5000,
    host: Annotated[
        str, typer.Option(help="Address to listen on; 0.0.0.0 lets a container in.")
    ] = "0.0.0.0",  # noqa: S104
    container_host: Annotated[
        str, typer.Option(help="How a sam local container reaches this machine.")
    ] = "host.docker.internal",
    env_file: Annotated[
        str, typer.Option(help="Where to write sam's --env-vars file.")
    ] = "env.json",
    credentials_file: Annotated[
        str, typer.Option(help="Where to write the function role's credentials as export lines.")
    ] = "local-aws-credentials.sh",
    items: Annotated[int, typer.Option(help="Items to put in my-table.")] = 120,
) -> None:
    """Start the embedded two-account AWS and write env.json for `sam local invoke`; Ctrl-C stops it.

    sam local passes only the variables template.yaml declares (the settings and EndpointUrl's
    AWS_ENDPOINT_URL) from env.json; the credentials reach the container from the shell, so
    source the credentials file before `sam local invoke`.
    """
    import signal
    import threading

    from table_sync.local.accounts import REGION
    from table_sync.local.seed import provision
    from table_sync.local.server import MotoServer

    with MotoServer(host=host, port=port) as server:
        aws = provision(server.endpoint, items=items)
        settings = aws.settings_env()
        settings["AWS_ENDPOINT_URL"] = f"http://{container_host}:{server.port}"
        with open(env_file, "w") as out:
            json.dump({"SyncFunction": settings}, out, indent=2)
        exports = {**aws.function_credentials().as_env(), "AWS_DEFAULT_REGION": REGION}
        with open(
            os.open(credentials_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w"
        ) as out:
            out.writelines(f"export {k}={shlex.quote(v)}\n" for k, v in exports.items())
        err.print(
            f"embedded AWS on {server.endpoint}; wrote {env_file} and {credentials_file}.\n"
            f"  source {credentials_file} && sam build && "
            f"sam local invoke SyncFunction --env-vars {env_file} "
            "-e events/scheduled-event.json\nCtrl-C to stop."
        )
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
