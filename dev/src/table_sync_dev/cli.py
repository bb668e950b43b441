"""``table-sync``: operate the sync from a shell, with the caller's own credentials.

Every ``run``/``verify`` option falls back to the environment variable of the same setting (the
Lambda's names), so ``SOURCE_ROLE_ARN=... table-sync run`` and ``table-sync run --role-arn ...``
are the same run.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import os
import re
import shlex
import socket
import sys
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import boto3
import typer
from botocore.exceptions import CredentialRetrievalError
from rich.console import Console
from rich.table import Table

from table_sync.aws.clients import caller_client, new_session
from table_sync.aws.errors import translated
from table_sync.aws.sts import session_name
from table_sync.errors import ConfigurationError, SourceAccessError, TableSyncError
from table_sync.models import Invocation, Settings, SkippedRun
from table_sync.models.events import RUN_ID_PATTERN
from table_sync.models.settings import ROLE_ARN, SESSION_MAX, SESSION_MIN
from table_sync.observability import keep_sdk_loggers_above_debug, logger
from table_sync.runs import new_run_id, run_step
from table_sync.state import StateStore
from table_sync.verify import verify_copy
from table_sync_dev.cli_output import progress, summary_line, summary_table, verify_line

app = typer.Typer(
    help="Copy a DynamoDB table with KMS-encrypted attributes from another account, decrypted.",
    no_args_is_help=True,
    add_completion=False,
)
err = Console(stderr=True)

RoleArn = Annotated[str | None, typer.Option(help="SOURCE_ROLE_ARN: the AccountA reader role.")]
ExternalId = Annotated[str | None, typer.Option(help="SOURCE_EXTERNAL_ID.")]
SourceTable = Annotated[str | None, typer.Option(help="SOURCE_TABLE_NAME (default my-table).")]
KmsKeyArn = Annotated[str | None, typer.Option(help="SOURCE_KMS_KEY_ARN.")]
EncryptedAttributes = Annotated[
    str | None, typer.Option(help="ENCRYPTED_ATTRIBUTES, comma-separated.")
]
KeyAttributes = Annotated[
    str | None,
    typer.Option(help="SOURCE_KEY_ATTRIBUTES, comma-separated (partition key first)."),
]
ItemFormat = Annotated[str | None, typer.Option(help="ITEM_FORMAT.")]
SessionDuration = Annotated[
    int | None, typer.Option(help="SOURCE_SESSION_DURATION, 900-3600 seconds.")
]
PageSize = Annotated[int | None, typer.Option(help="PAGE_SIZE (Scan Limit).")]
Destination = Annotated[
    str | None, typer.Option(help="DESTINATION: dynamodb://<table> or s3://<bucket>/<prefix>.")
]
SourceRegion = Annotated[
    str | None, typer.Option("--region", help="SOURCE_REGION: the source table's region.")
]
StateTable = Annotated[
    str | None, typer.Option(help="STATE_TABLE: checkpoints, leases, the chain of exports.")
]
Quarantine = Annotated[
    str | None,
    typer.Option(help="QUARANTINE: dynamodb://<table> or s3://<bucket>/<prefix>."),
]
AsJson = Annotated[bool, typer.Option("--json", metavar="", help="Print the result as JSON.")]
# Protecting the copy: what AccountB receives of each item (the docs' "Protecting the copy").
CopyAttributes = Annotated[
    str | None,
    typer.Option(help="COPY_ATTRIBUTES: copy only these (comma-separated), and the key."),
]
DropAttributes = Annotated[
    str | None, typer.Option(help="DROP_ATTRIBUTES: leave these out (comma-separated).")
]
TransformOption = Annotated[
    str | None,
    typer.Option("--transform", help="TRANSFORM: package.module:function run on each item."),
]
MaskAttributes = Annotated[
    str | None, typer.Option(help="MASK_ATTRIBUTES: attribute:N pairs (keep the last N).")
]
HashAttributes = Annotated[
    str | None, typer.Option(help="HASH_ATTRIBUTES: replace these by their keyed hash.")
]
HashKeyArn = Annotated[str | None, typer.Option(help="HASH_KEY_ARN: AccountB's HMAC key.")]
ReencryptAttributes = Annotated[
    str | None,
    typer.Option(help="REENCRYPT_ATTRIBUTES: write these encrypted under --attribute-key-arn."),
]
AttributeKeyArn = Annotated[
    str | None, typer.Option(help="DESTINATION_ATTRIBUTE_KEY_ARN: AccountB's attribute key.")
]
ReencryptContext = Annotated[
    str | None, typer.Option(help="REENCRYPT_CONTEXT: attribute (default) or item.")
]


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"table-sync {version('table-sync')}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, metavar="", help="Print the version."
        ),
    ] = False,
) -> None:
    """Copy a DynamoDB table with KMS-encrypted attributes from another account, decrypted."""


def seed_session_name() -> str:
    """The runbook's ``$LOGNAME@host``."""
    user = os.environ.get("LOGNAME") or getpass.getuser()
    return session_name(f"{user}@{socket.gethostname()}")


# The options that set settings: the commands' parameter, and the setting (field) it sets. The
# option is the parameter's name with dashes (`page_size` is `--page-size`).
SETTING_OPTIONS = {
    "role_arn": "source_role_arn",
    "table": "source_table_name",
    "kms_key_arn": "source_kms_key_arn",
    "encrypted_attributes": "encrypted_attributes",
    "key_attributes": "source_key_attributes",
    "item_format": "item_format",
    "destination": "destination",
    "external_id": "source_external_id",
    "session_duration": "source_session_duration",
    "page_size": "page_size",
    "segments": "total_segments",
    "segment": "segment",
    "dry_run": "dry_run",
    "full": "full_copy",
    "region": "source_region",
    "state_table": "state_table",
    "quarantine": "quarantine",
    "copy_attributes": "copy_attributes",
    "drop_attributes": "drop_attributes",
    "transform": "transform",
    "mask_attributes": "mask_attributes",
    "hash_attributes": "hash_attributes",
    "hash_key_arn": "hash_key_arn",
    "reencrypt_attributes": "reencrypt_attributes",
    "attribute_key_arn": "destination_attribute_key_arn",
    "reencrypt_context": "reencrypt_context",
}
# The option that sets each variable: "--" and the parameter's name with dashes.
OPTION_OF = {
    str(Settings.model_fields[field].alias): "--" + name.replace("_", "-")
    for name, field in SETTING_OPTIONS.items()
}


# The options of protecting the copy, which run and verify both take.
SHAPING_OPTIONS = (
    "copy_attributes",
    "drop_attributes",
    "transform",
    "mask_attributes",
    "hash_attributes",
    "hash_key_arn",
    "reencrypt_attributes",
    "attribute_key_arn",
    "reencrypt_context",
)


def _shaping(parameters: dict[str, Any]) -> dict[str, Any]:
    """A command's shaping options, from its parameters (``locals()``)."""
    return {name: parameters[name] for name in SHAPING_OPTIONS}


def _settings(**options: Any) -> Settings:
    """Settings from the environment with the given options (the commands' parameters, None or
    False for not given) overriding them; a problem with an option's value names the option
    (``--page-size (PAGE_SIZE): ...``)."""
    given = {
        name: value for name, value in options.items() if value is not None and value is not False
    }
    try:
        return Settings.from_env(
            os.environ, **{SETTING_OPTIONS[name]: value for name, value in given.items()}
        )
    except ConfigurationError as exc:
        option_of = {
            Settings.model_fields[SETTING_OPTIONS[name]].alias: "--" + name.replace("_", "-")
            for name in given
        }
        problems = []
        for problem in exc.problems:
            variable, sep, message = problem.partition(": ")
            option = option_of.get(variable)
            problems.append(f"{option} ({variable}){sep}{message}" if option else problem)
        raise ConfigurationError(problems) from None


def _fail(exc: Exception, *, options: bool = False) -> typer.Exit:
    message = _with_options(str(exc)) if options else str(exc)
    err.print(f"[bold red]error:[/] {message}", markup=True, highlight=False, soft_wrap=True)
    return typer.Exit(code=1)


def _with_options(message: str) -> str:
    """``message``, ending with the option that sets each variable it names (unless it names
    that option already): ``... SOURCE_TABLE_NAME my-tabel ... (--table sets SOURCE_TABLE_NAME)``."""
    named = [
        f"{option} sets {variable}"
        for variable, option in OPTION_OF.items()
        if re.search(rf"(?<![A-Za-z0-9_]){variable}(?![A-Za-z0-9_])", message)
        and option not in message
    ]
    return f"{message} ({'; '.join(named)})" if named else message


@contextlib.contextmanager
def _failing_with_one_line(*, options: bool = False) -> Iterator[None]:
    """Any error table-sync can name ends the command with one line on stderr and status 1;
    with ``options`` (run and verify), naming the option beside each variable it names."""
    try:
        yield
    except TableSyncError as exc:
        raise _fail(exc, options=options) from None


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """The run's JSON log lines go to stderr (stdout is the result), and only at the level
    POWERTOOLS_LOG_LEVEL asks for: none by default, since the command reports errors and the
    summary itself. The logger is as it was afterwards (the commands also run inside other
    programs)."""
    handler = logger.registered_handler
    level = logger.log_level
    stream = handler.setStream(sys.stderr) if isinstance(handler, logging.StreamHandler) else None
    logger.setLevel(os.environ.get("POWERTOOLS_LOG_LEVEL", "CRITICAL"))
    keep_sdk_loggers_above_debug()  # botocore's DEBUG would log the decrypted values
    try:
        yield
    finally:
        logger.setLevel(level)
        if stream is not None and isinstance(handler, logging.StreamHandler):
            handler.setStream(stream)


@app.command()
def run(
    role_arn: RoleArn = None,
    table: SourceTable = None,
    kms_key_arn: KmsKeyArn = None,
    encrypted_attributes: EncryptedAttributes = None,
    key_attributes: KeyAttributes = None,
    item_format: ItemFormat = None,
    destination: Destination = None,
    external_id: ExternalId = None,
    session_duration: SessionDuration = None,
    page_size: PageSize = None,
    region: SourceRegion = None,
    state_table: StateTable = None,
    quarantine: Quarantine = None,
    copy_attributes: CopyAttributes = None,
    drop_attributes: DropAttributes = None,
    transform: TransformOption = None,
    mask_attributes: MaskAttributes = None,
    hash_attributes: HashAttributes = None,
    hash_key_arn: HashKeyArn = None,
    reencrypt_attributes: ReencryptAttributes = None,
    attribute_key_arn: AttributeKeyArn = None,
    reencrypt_context: ReencryptContext = None,
    segments: Annotated[int | None, typer.Option(help="TOTAL_SEGMENTS of a parallel scan.")] = None,
    segment: Annotated[int | None, typer.Option(help="SEGMENT to scan, from 0.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", metavar="", help="Scan and decrypt; write nothing.")
    ] = False,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            metavar="",
            help="Decrypt and write every item (FULL_COPY), not only those changed since "
            "their copies were made.",
        ),
    ] = False,
    run_id: Annotated[
        str | None,
        typer.Option(
            help="Resume this run (a failed, interrupted or Lambda run), or name the run the "
            "segments of a parallel backfill belong to (required with --segments)."
        ),
    ] = None,
    finalize: Annotated[
        bool,
        typer.Option(
            "--finalize",
            metavar="",
            help="Finish a parallel run once all its --segments are done (S3 manifests, sweep).",
        ),
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Run one sync now (a backfill from a laptop): assume the source role with your credentials.

    On a terminal it shows a progress line (with a total and an ETA once a run has completed) and a summary table; in a pipe it prints one line of key=value pairs; --json prints the whole summary.

    Exit status: 0 when the run (or segment) is done, 1 on an error, 75 when it was skipped because another run holds the destination's lease (try again later, or resume that run), 130 after Ctrl-C (it prints the command that resumes the run).
    """
    with _quiet_logs(), _failing_with_one_line(options=True):
        invocation = _invocation(run_id, segments, finalize=finalize, dry_run=dry_run)
        settings = _settings(
            role_arn=role_arn,
            table=table,
            kms_key_arn=kms_key_arn,
            encrypted_attributes=encrypted_attributes,
            key_attributes=key_attributes,
            item_format=item_format,
            destination=destination,
            external_id=external_id,
            session_duration=session_duration,
            page_size=page_size,
            region=region,
            state_table=state_table,
            quarantine=quarantine,
            **_shaping(locals()),
            segments=segments,
            segment=0 if finalize else segment,
            dry_run=dry_run,
            full=full,
        )
        this_run = invocation.run_id or new_run_id()
        session = new_session()
        live = err.is_terminal and not as_json
        expected = _expected_items(settings, session) if live and not segments else None
        try:
            with progress(err, enabled=live, expected=expected) as on_page:
                summary = run_step(
                    settings,
                    invocation,
                    base_session=session,
                    role_session_name=seed_session_name(),
                    run_id=this_run,
                    on_page=on_page,
                )
        except KeyboardInterrupt:
            raise _interrupted(settings, this_run) from None
    if as_json:
        typer.echo(json.dumps(summary.model_dump(mode="json"), indent=2))
    elif sys.stdout.isatty():
        Console().print(summary_table(summary))
    else:
        typer.echo(summary_line(summary))
    if isinstance(summary, SkippedRun):
        err.print(
            f"skipped: run {summary.held_by} holds the lease on {summary.destination} until "
            f"{summary.lease_expires_at.isoformat()}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(code=EXIT_SKIPPED)


def _expected_items(settings: Settings, session: boto3.Session) -> int | None:
    """How many items the last complete run scanned (STATE_TABLE keeps it), for the progress
    line's total; None when unknown. The run itself reports any problem with the state table."""
    try:
        state = StateStore.for_settings(settings, session)
        return state.source_items(settings.source_table_arn) if state else None
    except TableSyncError:
        return None


# EX_TEMPFAIL (sysexits.h): a temporary condition; the same command may succeed later.
EXIT_SKIPPED = 75
# 128 + SIGINT, as a shell reports a command Ctrl-C stopped.
EXIT_INTERRUPTED = 130


def _interrupted(settings: Settings, run_id: str) -> typer.Exit:
    """Ctrl-C: every page up to the last checkpoint is in the destination and the lease is
    released (run_step gives it back on any exit); say how to resume, in one line."""
    if settings.state_table and not settings.dry_run:
        args = _without_run_id(sys.argv[1:])
        command = shlex.join(["table-sync", *args, "--run-id", run_id])
        err.print(
            f"interrupted: run {run_id} stopped at its last checkpoint (STATE_TABLE "
            f"{settings.state_table}) and released its lease; resume with: {command}",
            highlight=False,
            soft_wrap=True,
        )
    else:
        err.print(
            "interrupted: nothing to resume from (no STATE_TABLE, or a dry run); "
            "run again to start over",
            highlight=False,
            soft_wrap=True,
        )
    return typer.Exit(code=EXIT_INTERRUPTED)


def _without_run_id(args: list[str]) -> list[str]:
    """The command's arguments less any --run-id (the resume names the run itself)."""
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--run-id":
            skip = True
        elif not arg.startswith("--run-id="):
            kept.append(arg)
    return kept


def _invocation(
    run_id: str | None, segments: int | None, *, finalize: bool, dry_run: bool
) -> Invocation:
    """What the options ask for: a backfill (new, or resuming --run-id), one segment of a named
    parallel run, or its finalize. Problems name the option."""
    problems = []
    if run_id is not None and not re.fullmatch(RUN_ID_PATTERN, run_id):
        problems.append("--run-id: 1-80 of letters, digits and _.:-")
    if finalize and (run_id is None or segments is None):
        problems.append("--finalize: needs --run-id and --segments (the run to finish)")
    elif segments is not None and segments > 1 and run_id is None:
        problems.append(
            "--run-id: required with --segments (every shell's segment must belong to one run)"
        )
    if problems:
        raise ConfigurationError(problems)
    if finalize:
        return Invocation(trigger="finalize", run_id=run_id, total_segments=segments)
    return Invocation(trigger="backfill", run_id=run_id, dry_run=dry_run)


class Shell(StrEnum):
    sh = "sh"
    fish = "fish"
    json = "json"


SESSION_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
)


@app.command()
def credentials(
    role_arn: RoleArn = None,
    external_id: ExternalId = None,
    duration: Annotated[int, typer.Option(help="Session seconds (the seed's 900).")] = 900,
    name: Annotated[
        str | None, typer.Option("--session-name", help="RoleSessionName (default $LOGNAME@host).")
    ] = None,
    output: Annotated[Shell, typer.Option("--format", help="sh, fish or json.")] = Shell.sh,
    keep_env: Annotated[
        bool,
        typer.Option(
            "--keep-env", metavar="", help="Assume with inherited AWS_* session variables."
        ),
    ] = False,
) -> None:
    """The seed's iam-assume-role.sh: print the source role's temporary credentials.

    `eval "$(table-sync credentials)"` (sh/bash), `table-sync credentials --format fish | source`,
    or `credential_process = table-sync credentials --format json` in an AWS CLI profile.
    """
    with _not_nested():
        _print_credentials(role_arn, external_id, duration, name, output, keep_env=keep_env)


@contextlib.contextmanager
def _not_nested() -> Iterator[None]:
    """Refuse to run inside another `table-sync credentials` (a credential_process loop: the
    profile it assumes the role with runs it again, which would nest without end)."""
    if os.environ.get(CREDENTIALS_MARK):
        raise _fail(ValueError(CALLING_ITSELF))
    os.environ[CREDENTIALS_MARK] = "1"  # inherited by a credential_process this one starts
    try:
        yield
    finally:
        os.environ.pop(CREDENTIALS_MARK, None)


def _print_credentials(
    role_arn: str | None,
    external_id: str | None,
    duration: int,
    name: str | None,
    output: Shell,
    *,
    keep_env: bool,
) -> None:
    role = role_arn or os.environ.get("SOURCE_ROLE_ARN")
    problems = _credentials_problems(role, duration, given_role=role_arn is not None)
    if problems:
        raise _fail(ConfigurationError(problems))
    cleared = []
    if not keep_env and ("AWS_SESSION_TOKEN" in os.environ or "AWS_SECURITY_TOKEN" in os.environ):
        # As the seed does: a shell that eval'ed an earlier session must not chain from it.
        cleared = [v for v in SESSION_VARIABLES if os.environ.pop(v, None) is not None]
    kwargs: dict[str, Any] = {
        "RoleArn": role,
        "RoleSessionName": session_name(name) if name else seed_session_name(),
        "DurationSeconds": duration,
    }
    if external_id or os.environ.get("SOURCE_EXTERNAL_ID"):
        kwargs["ExternalId"] = external_id or os.environ["SOURCE_EXTERNAL_ID"]
    session = _your_session(role, cleared)
    with (
        _failing_with_one_line(),
        translated(SourceAccessError, lambda code: f"cannot assume {role}: {code}"),
    ):
        creds = caller_client(session, "sts").assume_role(**kwargs)["Credentials"]
    values = {
        "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
        "AWS_SESSION_TOKEN": creds["SessionToken"],
    }
    if output is Shell.json:
        typer.echo(
            json.dumps(
                {
                    "Version": 1,
                    "AccessKeyId": values["AWS_ACCESS_KEY_ID"],
                    "SecretAccessKey": values["AWS_SECRET_ACCESS_KEY"],
                    "SessionToken": values["AWS_SESSION_TOKEN"],
                    "Expiration": creds["Expiration"].isoformat(),
                }
            )
        )
    elif output is Shell.fish:
        for key, value in values.items():
            typer.echo(f"set -gx {key} {_fish_quote(value)};")
    else:
        for key, value in values.items():
            typer.echo(f"export {key}={shlex.quote(value)}")


def _your_session(role: str | None, cleared: list[str]) -> boto3.Session:
    """The caller's session, its credentials resolved now, so that missing or failing
    credentials are said plainly (the messages are botocore's and ours: no secret in them)."""
    session = new_session()
    try:
        found = session.get_credentials()
    except CredentialRetrievalError as exc:  # a profile's credential_process failed
        # Its own stderr (in the exception) is not repeated: a process that prints credentials
        # may print secrets there too. Only this command's loop message is ours to pass on.
        why = CALLING_ITSELF if CALLING_ITSELF in str(exc) else "its credential_process failed"
        raise _fail(ValueError(f"cannot get your credentials to assume {role}: {why}")) from None
    if found is None:
        hint = (
            f", after clearing the inherited {', '.join(cleared)} (an earlier session's: "
            "--keep-env assumes with them instead)"
            if cleared
            else ""
        )
        raise _fail(
            ValueError(f"no AWS credentials to assume {role} with{hint}; set AWS_PROFILE or log in")
        )
    return session


CALLING_ITSELF = (
    "table-sync credentials is calling itself: the AWS profile it assumes the role with runs "
    "it as its credential_process. Give that profile a source_profile with your own "
    "credentials (see README, `table-sync credentials`)"
)
# Set while `table-sync credentials` runs; a nested one (a credential_process loop) refuses.
CREDENTIALS_MARK = "TABLE_SYNC_CREDENTIALS_RUNNING"


def _credentials_problems(role: str | None, duration: int, *, given_role: bool) -> list[str]:
    """The checks `run` makes of the role ARN, and AWS's bounds on a session's length, naming
    the option (or the variable the role came from)."""
    problems = []
    if not role:
        problems.append("--role-arn: required (or set SOURCE_ROLE_ARN)")
    elif not ROLE_ARN.match(role):
        name = "--role-arn" if given_role else "SOURCE_ROLE_ARN"
        problems.append(f"{name}: must be an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
    if not SESSION_MIN <= duration <= MAX_SESSION_SECONDS:
        problems.append(
            f"--duration: must be {SESSION_MIN} to {MAX_SESSION_SECONDS} seconds, and at most "
            f"{SESSION_MAX} when your own credentials are an assumed role's (role chaining)"
        )
    return problems


# AssumeRole's DurationSeconds bounds (the role's MaxSessionDuration may allow less).
MAX_SESSION_SECONDS = 43_200


def _fish_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@app.command()
def verify(
    role_arn: RoleArn = None,
    table: SourceTable = None,
    kms_key_arn: KmsKeyArn = None,
    encrypted_attributes: EncryptedAttributes = None,
    key_attributes: KeyAttributes = None,
    item_format: ItemFormat = None,
    destination: Destination = None,
    external_id: ExternalId = None,
    session_duration: SessionDuration = None,
    page_size: PageSize = None,
    region: SourceRegion = None,
    state_table: StateTable = None,
    copy_attributes: CopyAttributes = None,
    drop_attributes: DropAttributes = None,
    transform: TransformOption = None,
    mask_attributes: MaskAttributes = None,
    hash_attributes: HashAttributes = None,
    hash_key_arn: HashKeyArn = None,
    reencrypt_attributes: ReencryptAttributes = None,
    attribute_key_arn: AttributeKeyArn = None,
    reencrypt_context: ReencryptContext = None,
    location: Annotated[
        str | None,
        typer.Option(help="An S3 export to check (default: the one latest.json names)."),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Compare the source (decrypted) with the copy, item by item; list differing keys, never
    values. Exits 0 when they match, 1 when they differ or cannot be compared. Takes the same
    settings and options as `run`. In a pipe it prints one line of key=value pairs (the keys
    themselves with --json)."""
    with _quiet_logs(), _failing_with_one_line(options=True):
        settings = _settings(
            role_arn=role_arn,
            table=table,
            kms_key_arn=kms_key_arn,
            encrypted_attributes=encrypted_attributes,
            key_attributes=key_attributes,
            item_format=item_format,
            destination=destination,
            external_id=external_id,
            session_duration=session_duration,
            page_size=page_size,
            region=region,
            state_table=state_table,
            **_shaping(locals()),
        )
        comparison, where = verify_copy(
            settings,
            base_session=new_session(),
            role_session_name=seed_session_name(),
            location=location,
        )
    result = {"destination": where, "matches": comparison.matches, **vars(comparison)}
    if not comparison.matches:
        result["repair"] = _repair_command(settings)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    elif not sys.stdout.isatty():
        typer.echo(verify_line(result))
    else:
        console = Console()
        # Above the table, not its title: a long S3 location must not wrap to the table's width.
        console.print(
            f"table-sync verify: {settings.source_table_name} -> {where}",
            soft_wrap=True,
            highlight=False,
        )
        rows = Table(show_header=False)
        for label in ("source_items", "destination_items"):
            rows.add_row(label.replace("_", " "), str(result[label]))
        for label in ("missing", "unexpected", "different", "undecryptable", "duplicated"):
            keys = result[label]
            rows.add_row(label, f"{len(keys)}" + (": " + ", ".join(keys[:10]) if keys else ""))
        rows.add_row("result", "[green]match[/]" if comparison.matches else "[red]differ[/]")
        console.print(rows)
        if not comparison.matches:
            console.print(f"repair: {result['repair']}", soft_wrap=True, highlight=False)
    raise typer.Exit(code=0 if comparison.matches else 1)


def _repair_command(settings: Any) -> str:
    """What rewrites the copy from the source: a run that decrypts and writes every item."""
    where = f" --destination {settings.destination.uri}"
    if settings.destination_table:
        return (
            f"table-sync run --full{where} (decrypts and rewrites every item; FULL_COPY_EVERY=N "
            "makes every Nth scheduled run do so)"
        )
    return f"table-sync run --full{where} (writes a full snapshot)"


@app.command()
def demo() -> None:
    """Run the demo: the real sync on the embedded two-account AWS (needs the dev dependencies)."""
    from table_sync_dev.local.demo import main as demo_main

    raise typer.Exit(code=demo_main())


@app.command("local-aws")
def local_aws(
    port: Annotated[
        int, typer.Option(envvar="LOCAL_AWS_PORT", help="Port for the embedded AWS.")
    ] = 5000,
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on. Loopback keeps this credentialed fake AWS to this "
            "machine (and host-network containers); 0.0.0.0 lets a container on a bridge "
            "network (Docker Desktop) in, and anything else that can reach this machine."
        ),
    ] = "127.0.0.1",
    container_host: Annotated[
        str,
        typer.Option(
            help="How a sam local container reaches this machine: 127.0.0.1 on the host "
            "network, host.docker.internal with Docker Desktop (and --host 0.0.0.0)."
        ),
    ] = "127.0.0.1",
    directory: Annotated[
        Path,
        typer.Option(
            "--dir",
            envvar="LOCAL_AWS_DIR",
            help="Where to write env.json, local-aws-credentials.sh, local-aws.env (and, "
            "detached, local-aws.pid and local-aws.log).",
        ),
    ] = Path(),
    items: Annotated[int, typer.Option(help="Items to put in my-table.")] = 120,
    template: Annotated[
        Path, typer.Option(help="The template `sam local invoke` runs (its variables).")
    ] = Path("template.yaml"),
    detach: Annotated[
        bool,
        typer.Option(
            "--detach",
            help="Run in the background; once it is ready, print local-aws.env to stdout "
            '(eval "$(table-sync local-aws --detach)").',
            metavar="",
        ),
    ] = False,
    stop: Annotated[
        bool, typer.Option("--stop", help="Stop the detached one (of --dir).", metavar="")
    ] = False,
    pid_file: Annotated[
        bool, typer.Option("--pid-file", hidden=True)  # the detached process: say when ready
    ] = False,
) -> None:
    """Start the embedded two-account AWS, with IAM enforced, for `table-sync` and `sam local`.

    It writes local-aws.env for a shell on this machine (endpoint on 127.0.0.1, region, an
    AccountB operator's credentials, the settings and the copy bucket), and env.json plus
    local-aws-credentials.sh for `sam local invoke` (sam local gives the container every
    variable template.yaml declares, so env.json names each one: the embedded AWS's value, or
    empty for unset). In the foreground, Ctrl-C stops it; --detach and --stop run it in the
    background.
    """
    from table_sync_dev.local import kit

    if stop:
        pid = kit.stop(directory)
        err.print(f"stopped local-aws (pid {pid})" if pid else "no local-aws was running")
        return
    if not template.is_file():
        raise typer.BadParameter(f"{template}: not found (run from the project, or pass it)")
    running = (directory / kit.PID_FILE).exists()  # kit.detach says so
    if not pid_file and not running and (problem := _port_taken(host, port)):
        err.print(f"error: {problem}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=1)
    directory.mkdir(parents=True, exist_ok=True)
    if detach:
        argv = [
            "local-aws",
            *("--port", str(port), "--host", host, "--container-host", container_host),
            *("--dir", str(directory.resolve()), "--items", str(items)),
            *("--template", str(template.resolve()), "--pid-file"),
        ]
        try:
            pid = kit.detach(argv, directory)
        except kit.DetachError as exc:
            err.print(f"error: {exc}", highlight=False)
            raise typer.Exit(code=1) from exc
        typer.echo((directory / kit.HOST_ENV).read_text(), nl=False)
        err.print(
            f"embedded AWS on http://127.0.0.1:{port} (pid {pid}, log "
            f"{directory / kit.LOG_FILE}), IAM enforced; settings in {directory / kit.HOST_ENV}. "
            "Stop it with: table-sync local-aws --stop",
            soft_wrap=True,
            highlight=False,
        )
        return
    _serve_local_aws(port, host, container_host, directory, items, template, pid_file=pid_file)


def _port_taken(host: str, port: int) -> str | None:
    """Why the embedded AWS cannot listen on ``host:port`` (another program has it: AirPlay
    holds 5000 on macOS), or None."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As the server binds (SO_REUSEADDR): a port a stopped server left in TIME_WAIT is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return (
                f"port {port} on {host} is in use ({exc.strerror}): choose another with --port "
                "(or LOCAL_AWS_PORT)"
            )
    return None


def _serve_local_aws(
    port: int,
    host: str,
    container_host: str,
    directory: Path,
    items: int,
    template: Path,
    *,
    pid_file: bool,
) -> None:
    import signal
    import threading

    from table_sync_dev.local import kit
    from table_sync_dev.local.seed import provision
    from table_sync_dev.local.server import MotoServer

    with MotoServer(host=host, port=port) as server:
        aws = provision(server.endpoint, items=items)
        aws.sessions()  # every session handed out is made now: IAM is enforced from here on
        # Before enforcement: moto's Lambda refuses its own admin's signature once it is on.
        kit.write_container_files(aws, template, container_host, server.port, directory)
        server.enforce_iam(True)
        kit.write_host_files(aws, server.port, directory)
        pid_path = directory / kit.PID_FILE
        if pid_file:
            pid_path.write_text(f"{os.getpid()}\n")  # last: the detaching parent waits for it
        else:
            err.print(
                f"embedded AWS on {server.endpoint}, IAM enforced.\n"
                f"  this machine: . {directory / kit.HOST_ENV} && table-sync run\n"
                f"  sam local:    source {directory / kit.CONTAINER_CREDENTIALS} && sam build && "
                f"sam local invoke SyncFunction --env-vars {directory / kit.ENV_JSON} "
                "-e events/scheduled-event.json\nCtrl-C to stop.",
                soft_wrap=True,  # a command must stay on one line, terminal or not
                highlight=False,
            )
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            with contextlib.suppress(KeyboardInterrupt):
                stop.wait()
        finally:
            if pid_file:
                pid_path.unlink(missing_ok=True)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
