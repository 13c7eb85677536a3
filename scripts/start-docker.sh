#!/usr/bin/env bash
# Start the Docker engine when it is not answering. Works with and without systemd.
set -euo pipefail
if docker info >/dev/null 2>&1; then exit 0; fi
echo "-----> Starting the Docker engine"
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
  systemctl start docker || true
fi
if ! docker info >/dev/null 2>&1; then
  if ! pgrep -x dockerd >/dev/null; then
    mkdir -p /var/log
    setsid nohup dockerd >/var/log/slipway-dockerd.log 2>&1 < /dev/null &
  fi
fi
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then echo "       Docker engine is up"; exit 0; fi
  sleep 1
done
echo "error: the Docker engine did not start; see /var/log/slipway-dockerd.log" >&2
exit 1
