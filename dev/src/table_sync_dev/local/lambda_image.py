"""A Lambda base image for ``sam local invoke``, built on this machine.

SAM CLI wants ``public.ecr.aws/lambda/python:3.13-<arch>`` and no image registry is reachable
here, so an image that behaves like it is built locally: a Debian root file system
(``debootstrap``), a Python 3.13 in ``/var/lang``, AWS's runtime interface client
(``awslambdaric``, from PyPI) in ``/var/runtime``, a ``/var/runtime/bootstrap`` that starts it
with ``$_HANDLER``, Lambda's environment variables, and ``WORKDIR /var/task``. SAM then adds its
own emulator (``aws-lambda-rie``, shipped inside aws-sam-cli) on top, as it does to AWS's image.

The image is labelled with a fingerprint of everything it is made from (the recipe: Debian
suite and packages, the Python, the runtime client's version, bootstrap and Dockerfile, the
architecture) and rebuilt only when that changes; the root
file system is kept under ``.tools/lambda-image/`` for the same fingerprint. An arm64 image on
an x86_64 machine is built and run under qemu (Debian's qemu-user-static): slow, but the
template's own architecture.

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
PYTHON_VERSION = "3.13"
# What the runtime's Python needs besides Debian's minimal base (its extension modules' libraries).
LIBRARIES = (
    "ca-certificates,libbz2-1.0,libexpat1,libffi8,liblzma5,libncursesw6,libreadline8,"
    "libsqlite3-0,libssl3,libuuid1,zlib1g"
)
# This machine's architecture: Debian 12 and this machine's own Python 3.13 (pyenv's here),
# copied into /var/lang. Another architecture (arm64 on x86_64, under qemu): Debian 13, whose
# own python3.13 is of that architecture.
NATIVE_SUITE, FOREIGN_SUITE = "bookworm", "trixie"
# Left out of the copied Python: what a Lambda runtime does not ship either.
PYTHON_EXCLUDES = ("test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3")
DEBIAN_ARCH = {"x86_64": "amd64", "arm64": "arm64"}
WHEEL_PLATFORM = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}
QEMU = {"x86_64": "qemu-x86_64", "arm64": "qemu-aarch64"}
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
    native = arch == host_arch()
    runtime = [version, str(python), NATIVE_SUITE, LIBRARIES, *PYTHON_EXCLUDES] if native else []
    recipe = [arch, RUNTIME_CLIENT, BOOTSTRAP, DOCKERFILE, *runtime]
    if not native:
        recipe += [FOREIGN_SUITE, f"python{PYTHON_VERSION}"]
    return hashlib.sha256("\0".join(recipe).encode()).hexdigest()[:16]


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
    native = arch == host_arch()
    for stale in target.parent.glob(f"{arch}-*"):  # other recipes' (and a broken build's)
        shutil.rmtree(stale, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    rootfs = target / "rootfs"
    # Debian's own python3.13 brings its libraries (trixie names some differently: libssl3t64).
    packages = LIBRARIES if native else f"ca-certificates,python{PYTHON_VERSION}"
    _debootstrap(rootfs, arch, NATIVE_SUITE if native else FOREIGN_SUITE, packages)
    lang = rootfs / "var" / "lang"
    if native:
        ignore = shutil.ignore_patterns(*PYTHON_EXCLUDES)
        shutil.copytree(python.parent.parent, lang, symlinks=True, ignore=ignore)
    else:
        (lang / "bin").mkdir(parents=True)
        (lang / "bin" / "python3").symlink_to(f"/usr/bin/python{PYTHON_VERSION}")
    # The runtime client's wheels for the image's architecture, installed from this machine.
    wheels = ["--platform", WHEEL_PLATFORM[arch], "--only-binary=:all:"]
    wheels += ["--python-version", PYTHON_VERSION, "--implementation", "cp"]
    subprocess.run(  # noqa: S603 - this machine's Python, installing from PyPI
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *wheels,
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


def _debootstrap(rootfs: Path, arch: str, suite: str, packages: str) -> None:
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise ImageBuildError("debootstrap is missing: apt-get install debootstrap")
    if arch != host_arch() and not Path(f"/proc/sys/fs/binfmt_misc/{QEMU[arch]}").exists():
        raise ImageBuildError(
            f"an {arch} image needs {arch} emulation: apt-get install qemu-user-static "
            f"binfmt-support (it registers {QEMU[arch]})"
        )
    arguments = ["--variant=minbase", f"--arch={DEBIAN_ARCH[arch]}", f"--include={packages}"]
    subprocess.run(  # noqa: S603 - Debian's own tool, with its default mirror
        [debootstrap, *arguments, suite, rootfs], check=True, capture_output=True
    )


def ensure_base_image(arch: str | None = None) -> str:
    """The base image's tag (this machine's architecture unless ``arch`` names another), built
    first unless one of the same fingerprint exists."""
    arch = arch or host_arch()
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
        platform_ = f"linux/{DEBIAN_ARCH[arch]}"
        built = _docker(
            "build", "--network", "host", "--platform", platform_, "-q", "-t", tag, context
        )
    if built.returncode != 0:
        raise ImageBuildError(f"docker build of {tag} failed: {built.stderr.strip()[-2000:]}")
    return tag


def host_arch() -> str:
    return {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine()]


if __name__ == "__main__":
    print(ensure_base_image(*sys.argv[1:2]))
