#!/usr/bin/env bash
# Install what Slipway needs and is missing: Debian packages, then the Python virtualenv.
#   scripts/install.sh          what `make up` needs
#   scripts/install.sh --test   also what `make test` needs (PostgreSQL, Chromium, wrk)
# Run twice, it does nothing the second time.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(docker.io debootstrap e2fsprogs btrfs-progs git nginx redis-server supervisor util-linux
          ca-certificates curl python3-venv tar zstd)
if [ "${1:-}" = "--test" ]; then
  packages+=(postgresql chromium chromium-driver wrk)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "-----> Installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  # The packaged services are started by Slipway itself, on its own ports and data directory.
  for svc in nginx redis-server supervisor postgresql; do
    if [ -d /run/systemd/system ]; then systemctl disable --now "$svc" >/dev/null 2>&1 || true; fi
  done
fi

# The virtualenv, rebuilt only when pyproject.toml changes.
stamp=.venv/.slipway-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "-----> Installing the Python virtualenv (.venv)"
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  echo "$want" > "$stamp"
fi
ln -sf "$PWD/.venv/bin/slipway" /usr/local/bin/slipway
