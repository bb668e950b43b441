"""Run SAM CLI (``python sam_host_network.py local invoke ...``) with every container it makes
on the host's network.

These machines' Docker daemon has no bridge network (``dockerd --bridge=none``), so that every
container's traffic stays on loopback. SAM CLI 1.170 cannot be told to use the host network:
``--docker-network host`` only skips connecting the container to a network, and the container
is still created with its port 8080 published, which needs a bridge. So this wrapper changes
two of docker-py's calls inside the sam process, and nothing else:

- ``containers.create``: ``network_mode="host"`` and no published ports. The emulator (the
  image's ``aws-lambda-rie``) is told to listen on ``127.0.0.1:<the port SAM chose>``, where SAM
  sends the invoke, instead of the container's own 8080;
- ``api.build`` (SAM adds its emulator to the base image): the build's ``RUN`` step on the
  host network too, and no ``platform`` when it is this machine's own (Docker 20.10's builder
  then asks the registry for the base image, which is local and must stay so).

It runs under aws-sam-cli's own interpreter and imports nothing of the project's. Where Docker
has a bridge network, plain ``sam`` needs none of this.
"""

from __future__ import annotations

import platform
import sys
from typing import Any

import docker.api.build
import docker.models.containers

RIE = "aws-lambda-rie"
RIE_PORT = "8080"
NATIVE_PLATFORM = {"x86_64": "linux/amd64", "aarch64": "linux/arm64"}.get(platform.machine())

_create = docker.models.containers.ContainerCollection.create
_build = docker.api.build.BuildApiMixin.build


def _published_port(ports: dict[Any, Any]) -> str | None:
    """The host port SAM published the emulator's 8080 on (``{"8080": (interface, port)}``)."""
    for container_port, binding in ports.items():
        if str(container_port).split("/")[0] == RIE_PORT:
            return str(binding[1] if isinstance(binding, tuple) else binding)
    return None


def create_on_host_network(self: Any, image: str, command: Any = None, **kwargs: Any) -> Any:
    port = _published_port(kwargs.pop("ports", None) or {})
    kwargs["network_mode"] = "host"
    entrypoint = list(kwargs.get("entrypoint") or [])
    if port and entrypoint and entrypoint[0].endswith(RIE):
        kwargs["entrypoint"] = [
            *entrypoint,
            "--runtime-interface-emulator-address",
            f"127.0.0.1:{port}",
        ]
    return _create(self, image, command, **kwargs)


def build_on_host_network(self: Any, *args: Any, **kwargs: Any) -> Any:
    kwargs.setdefault("network_mode", "host")
    if kwargs.get("platform") == NATIVE_PLATFORM:
        # Docker 20.10's builder asks the registry for FROM's image whenever a platform is
        # named, even one it holds: the native platform is the default, so it is left out.
        del kwargs["platform"]
    return _build(self, *args, **kwargs)


def main() -> None:
    docker.models.containers.ContainerCollection.create = create_on_host_network
    docker.api.build.BuildApiMixin.build = build_on_host_network
    from samcli.cli.main import cli

    sys.argv[0] = "sam"
    cli()


if __name__ == "__main__":
    main()
