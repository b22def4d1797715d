#!/usr/bin/env bash
# Makes sure a Docker daemon is up on this host, idempotently: installs Debian's docker.io
# (and debootstrap, which scripts/build-images.sh needs) when missing, and starts dockerd in the
# background when `docker info` fails, since nothing else starts it here (no systemd as PID 1).
# Usage: scripts/ensure-docker.sh        Env: FLEETTS_DOCKERD_LOG (default /var/log/fleetts-dockerd.log)
#                                               FLEETTS_DOCKER_WAIT_S (default 60)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log="${FLEETTS_DOCKERD_LOG:-/var/log/fleetts-dockerd.log}"
wait_s="${FLEETTS_DOCKER_WAIT_S:-60}"

# Prefer Debian's client, which matches the daemon we start, over any other docker on PATH.
export PATH="/usr/bin:/usr/sbin:$PATH"

if ! command -v dockerd >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
  bash "$here/ensure-deps.sh" docker
fi

docker_ok() { docker info >/dev/null 2>&1; }
docker_ok && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "fleetts: the Docker daemon is not reachable and only root can start it here." >&2
  echo "fleetts: start it (sudo dockerd &) or run this script as root." >&2
  exit 1
fi

# Another caller (a parallel test file) may be starting it right now: serialize on a lock.
exec 9>/run/fleetts-ensure-docker.lock
flock 9
docker_ok && exit 0

if ! pgrep -x dockerd >/dev/null 2>&1; then
  # containerd is started by dockerd itself when it is not already running.
  echo "fleetts: starting dockerd (log: $log)" >&2
  nohup setsid dockerd >>"$log" 2>&1 </dev/null &
fi

deadline=$((SECONDS + wait_s))
until docker_ok; do
  if [ $SECONDS -ge $deadline ]; then
    echo "fleetts: dockerd did not become ready within ${wait_s}s; last lines of $log:" >&2
    tail -n 20 "$log" >&2 || true
    exit 1
  fi
  sleep 0.2
done
echo "fleetts: docker is ready ($(docker version --format '{{.Server.Version}}'))" >&2
