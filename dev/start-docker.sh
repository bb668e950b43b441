#!/usr/bin/env bash
# Docker for the container tests, as these machines allow it: Debian's docker.io (and
# debootstrap, for the Lambda base image), the daemon as root with no bridge network, so that
# every container uses the host's network and its traffic stays on loopback. Never create a
# bridge network. Used by .ci/run on CI; on a machine of your own, start Docker your own way.
set -euo pipefail
if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
  nohup dockerd --bridge=none --iptables=false --ip-masq=false >/tmp/table-sync-dockerd.log 2>&1 &
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
fi
docker info --format 'Docker {{.ServerVersion}} is running' || {
  echo "dockerd did not start: see /tmp/table-sync-dockerd.log" >&2
  exit 1
}
