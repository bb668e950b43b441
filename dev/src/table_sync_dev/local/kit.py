"""``table-sync local-aws``'s files, and running it in the background.

It writes, in one directory:

* ``env.json`` and ``local-aws-credentials.sh``: for ``sam local invoke`` (a container reaches
  the embedded AWS through the container host; the function role's credentials come from the
  shell that runs sam);
* ``local-aws.env``: for a shell on this machine, ready to source or ``eval``: the endpoint on
  127.0.0.1, the region, every setting a ``table-sync run`` needs, the copy bucket's name, and
  ``AWS_PROFILE=local-aws`` in its own config file, ``local-aws.aws-config``, which holds an
  AccountB operator's credentials. A profile rather than ``AWS_ACCESS_KEY_ID``...: it is where
  a person's own credentials live, so ``table-sync credentials`` (which clears inherited keys,
  as the runbook's script does) works as it would in AWS; and the shell's real AWS config and
  credentials files are out of reach while it points at the embedded AWS;
* with ``--detach``, ``local-aws.pid`` (written last: the embedded AWS is ready) and
  ``local-aws.log``.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from table_sync_dev.local.accounts import REGION
from table_sync_dev.local.sam_kit import env_json
from table_sync_dev.local.seed import EmbeddedAws

ENV_JSON = "env.json"
CONTAINER_CREDENTIALS = "local-aws-credentials.sh"
HOST_ENV = "local-aws.env"
HOST_CONFIG = "local-aws.aws-config"
PROFILE = "local-aws"
PID_FILE = "local-aws.pid"
LOG_FILE = "local-aws.log"


def host_config(aws: EmbeddedAws, port: int) -> str:
    """The AWS config file of the host shell: one profile, AccountB's operator role."""
    creds = aws.operator_credentials()
    return (
        f"[profile {PROFILE}]\n"
        f"region = {REGION}\n"
        f"endpoint_url = http://127.0.0.1:{port}\n"
        f"aws_access_key_id = {creds.access_key_id}\n"
        f"aws_secret_access_key = {creds.secret_access_key}\n"
        f"aws_session_token = {creds.session_token}\n"
    )


def host_settings(aws: EmbeddedAws, port: int, directory: Path) -> dict[str, str]:
    """What a shell on this machine needs for `table-sync run`/`verify` (and `aws`) against the
    embedded AWS, as AccountB's operator role."""
    return {
        "AWS_CONFIG_FILE": str((directory / HOST_CONFIG).resolve()),
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_PROFILE": PROFILE,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        **aws.settings_env(),
        "STATE_TABLE": aws.state_table,
        "SOURCE_KEY_ATTRIBUTES": "pk",
        "COPY_BUCKET": aws.bucket,
    }


HOST_HEADER = """\
# table-sync local-aws: settings for a shell on this machine (. ./{name}, or eval the output of
# `table-sync local-aws --detach`). Credentials: AccountB's {role} role (the reader role trusts
# it), as profile {profile} of {config}. COPY_BUCKET is not a setting: it names the copy bucket,
# for --destination s3://... Open a new shell to get your own AWS settings back.
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_DEFAULT_PROFILE
"""


def exports(values: Mapping[str, str]) -> str:
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in values.items())


def write_private(path: Path, text: str) -> None:
    """Write ``text`` readable by its owner only (it holds credentials)."""
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
        out.write(text)


def write_container_files(
    aws: EmbeddedAws, template: Path, container_host: str, port: int, directory: Path
) -> None:
    """env.json (every variable the template declares) and the function role's credentials,
    for `sam local invoke`. The values are the deployed function's: its environment as the
    embedded AWS's CloudFormation resolved template.yaml, plus the endpoint."""
    settings = {**aws.function_environment(), "AWS_ENDPOINT_URL": f"http://{container_host}:{port}"}
    (directory / ENV_JSON).write_text(json.dumps(env_json(template, settings), indent=2))
    container = {**aws.function_credentials().as_env(), "AWS_DEFAULT_REGION": REGION}
    write_private(directory / CONTAINER_CREDENTIALS, exports(container))


def write_host_files(aws: EmbeddedAws, port: int, directory: Path) -> None:
    """local-aws.env and the config file it names."""
    write_private(directory / HOST_CONFIG, host_config(aws, port))
    role = aws.operator_role_arn.rsplit("/", 1)[-1]
    header = HOST_HEADER.format(name=HOST_ENV, role=role, profile=PROFILE, config=HOST_CONFIG)
    write_private(directory / HOST_ENV, header + exports(host_settings(aws, port, directory)))


def running_pid(directory: Path) -> int | None:
    """The pid of the detached local-aws whose pid file is in ``directory``, if it still runs."""
    path = directory / PID_FILE
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):  # gone, or alive but someone else's
        return None
    return pid


class DetachError(RuntimeError):
    pass


def detach(argv: Sequence[str], directory: Path, timeout: float = 120.0) -> int:
    """Start ``argv`` (local-aws in the foreground) in a session of its own, output to the log
    file, and return its pid once it has written its pid file (it is provisioned and ready)."""
    if (pid := running_pid(directory)) is not None:
        raise DetachError(
            f"local-aws is already running (pid {pid}, {directory / PID_FILE}); "
            "stop it first: table-sync local-aws --stop"
        )
    (directory / PID_FILE).unlink(missing_ok=True)
    log = directory / LOG_FILE
    with open(log, "ab") as output:
        child = subprocess.Popen(  # noqa: S603 - our own interpreter and command
            [sys.executable, "-m", "table_sync_dev.cli", *argv],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in this shell must not stop it
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running_pid(directory) == child.pid:
            return child.pid
        if child.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-5:])
            raise DetachError(f"local-aws exited with code {child.returncode}:\n{tail}")
        time.sleep(0.1)
    child.terminate()
    raise DetachError(f"local-aws was not ready within {timeout:.0f}s (see {log})")


def stop(directory: Path, timeout: float = 20.0) -> int | None:
    """Stop the detached local-aws of ``directory``; its pid, or None if none was running."""
    pid = running_pid(directory)
    if pid is None:
        (directory / PID_FILE).unlink(missing_ok=True)
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and running_pid(directory) == pid:
        time.sleep(0.1)
    if running_pid(directory) == pid:
        os.kill(pid, signal.SIGKILL)
    (directory / PID_FILE).unlink(missing_ok=True)
    return pid
