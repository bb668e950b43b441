"""A Lambda base image for ``sam local invoke``, built on this machine.

SAM CLI wants ``public.ecr.aws/lambda/python:3.13-<arch>`` and no image registry is reachable
here, so an image that behaves like it is built locally: a Debian root file system
(``debootstrap``), a Python 3.13 in ``/var/lang``, AWS's runtime interface client
(``awslambdaric``, from PyPI) in ``/var/runtime``, a ``/var/runtime/bootstrap`` that starts it
with ``$_HANDLER``, Lambda's environment variables, and ``WORKDIR /var/task``. SAM then adds its
own emulator (``aws-lambda-rie``, shipped inside aws-sam-cli) on top, as it does to AWS's image.

The image is labelled with a fingerprint of everything it is made from (this file, the Python,
the runtime client's version, the Debian suite) and rebuilt only when that changes; the root
file system is kept under ``.tools/lambda-image/`` for the same fingerprint.

``python -m table_sync_dev.local.lambda_image [x86_64|arm64]`` builds it and prints its tag.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from table_sync_dev.local.paths import TOOLS

RUNTIME_CLIENT = "awslambdaric==4.2.2"
SUITE = "bookworm"
PYTHON_VERSION = "3.13"
# What the runtime's Python needs besides Debian's minimal base (its extension modules' libraries).
PACKAGES = (
    "ca-certificates,libbz2-1.0,libexpat1,libffi8,liblzma5,libncursesw6,libreadline8,"
    "libsqlite3-0,libssl3,libuuid1,zlib1g"
)
# Left out of the copied Python: what a Lambda runtime does not ship either.
PYTHON_EXCLUDES = ("test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3")
DEBIAN_ARCH = {"x86_64": "amd64", "arm64": "arm64"}
BOOTSTRAP = """#!/bin/sh
# Lambda's runtime API is the emulator's (AWS_LAMBDA_RUNTIME_API); the handler is $_HANDLER.
exec /var/lang/bin/python3 -m awslambdaric "$_HANDLER"
"""
DOCKERFILE = """FROM scratch
ADD rootfs.tar /
ENV LANG=C.UTF-8 TZ=:/etc/localtime \\
    PATH=/var/lang/bin:/usr/local/bin:/usr/bin:/bin \\
    LD_LIBRARY_PATH=/var/lang/lib:/var/runtime:/var/task:/var/task/lib \\
    PYTHONPATH=/var/runtime \\
    LAMBDA_TASK_ROOT=/var/task LAMBDA_RUNTIME_DIR=/var/runtime
WORKDIR /var/task
LABEL table-sync.base-image={fingerprint}
ENTRYPOINT ["/var/runtime/bootstrap"]
"""


class ImageBuildError(RuntimeError):
    """The base image could not be built; the message says what is missing."""


def image_tag(arch: str) -> str:
    return f"public.ecr.aws/lambda/python:{PYTHON_VERSION}-{arch}"


def host_python() -> Path:
    """A Python 3.13 of this machine's architecture (pyenv's here), to copy into the image."""
    found = shutil.which(f"python{PYTHON_VERSION}")
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = sorted(pyenv_root.glob(f"versions/{PYTHON_VERSION}.*/bin/python{PYTHON_VERSION}"))
    for candidate in [*candidates, *([Path(found)] if found else [])]:
        if candidate.exists():
            return candidate.resolve()
    raise ImageBuildError(
        f"no python{PYTHON_VERSION} on this machine to put in the image: install one "
        f"(pyenv install {PYTHON_VERSION}, or uv python install {PYTHON_VERSION})"
    )


def fingerprint(arch: str, python: Path) -> str:
    version = subprocess.run(  # noqa: S603 - a Python of this machine
        [python, "-c", "import sys; print(sys.version)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    inputs = [Path(__file__).read_text(), version, RUNTIME_CLIENT, SUITE, arch, str(python)]
    return hashlib.sha256("\0".join(inputs).encode()).hexdigest()[:16]


def _docker(*args: str, capture: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - the docker client, with our own arguments
        ["docker", *args],  # noqa: S607
        capture_output=capture,
        text=True,
        check=False,
    )


def docker_unavailable() -> str | None:
    """Why no container can run here (one line), or None when a Docker daemon answers."""
    if shutil.which("docker") is None:
        return "no docker client (apt-get install docker.io)"
    result = _docker("info", "--format", "{{.ServerVersion}}")
    if result.returncode != 0:
        return (
            "no Docker daemon answers (start one: dockerd --bridge=none --iptables=false "
            "--ip-masq=false; .ci/run does)"
        )
    return None


def built_fingerprint(tag: str) -> str | None:
    """The fingerprint label of the image ``tag`` names, if there is one."""
    result = _docker(
        "image", "inspect", "--format", '{{index .Config.Labels "table-sync.base-image"}}', tag
    )
    return result.stdout.strip() or None if result.returncode == 0 else None


def _root_file_system(arch: str, python: Path, fingerprint: str) -> Path:
    """Debian, the Python and the runtime client, in ``.tools/lambda-image/<arch>-<fp>/``."""
    target = TOOLS / "lambda-image" / f"{arch}-{fingerprint}"
    if (target / ".complete").exists():
        return target
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise ImageBuildError("debootstrap is missing: apt-get install debootstrap")
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    rootfs = target / "rootfs"
    arguments = ["--variant=minbase", f"--arch={DEBIAN_ARCH[arch]}", f"--include={PACKAGES}"]
    subprocess.run(  # noqa: S603 - Debian's own tool, with its default mirror
        [debootstrap, *arguments, SUITE, rootfs], check=True, capture_output=True
    )
    prefix = python.parent.parent
    shutil.copytree(
        prefix,
        rootfs / "var" / "lang",
        symlinks=True,
        ignore=shutil.ignore_patterns(*PYTHON_EXCLUDES),
    )
    subprocess.run(  # noqa: S603 - the image's own Python, installing from PyPI
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
            str(rootfs / "var" / "runtime"),
            RUNTIME_CLIENT,
        ],
        check=True,
        capture_output=True,
    )
    bootstrap = rootfs / "var" / "runtime" / "bootstrap"
    bootstrap.write_text(BOOTSTRAP)
    bootstrap.chmod(0o755)
    (rootfs / "var" / "task").mkdir(parents=True, exist_ok=True)
    (target / ".complete").touch()
    return target


def ensure_base_image(arch: str = "x86_64") -> str:
    """The base image's tag, built first unless one of the same fingerprint exists."""
    if arch != host_arch():
        raise ImageBuildError(
            f"only a {host_arch()} image can be built from this machine's Python (asked for {arch})"
        )
    tag, python = image_tag(arch), host_python()
    wanted = fingerprint(arch, python)
    if built_fingerprint(tag) == wanted:
        return tag
    target = _root_file_system(arch, python, wanted)
    with tempfile.TemporaryDirectory(dir=target) as context:
        subprocess.run(  # noqa: S603 - tar of the root file system we just made
            ["tar", "-C", str(target / "rootfs"), "-cf", f"{context}/rootfs.tar", "."],  # noqa: S607
            check=True,
        )
        Path(context, "Dockerfile").write_text(DOCKERFILE.format(fingerprint=wanted))
        built = _docker("build", "--network", "host", "--quiet", "-t", tag, context)
    if built.returncode != 0:
        raise ImageBuildError(f"docker build of {tag} failed: {built.stderr.strip()[-2000:]}")
    return tag


def host_arch() -> str:
    return {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine()]


if __name__ == "__main__":
    print(ensure_base_image(*sys.argv[1:2]))
