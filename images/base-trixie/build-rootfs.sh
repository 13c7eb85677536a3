#!/usr/bin/env bash
# The base rootfs of Debian trixie: base/build-rootfs.sh with its suite set.
exec env SLIPWAY_SUITE=trixie bash "$(dirname "$0")/../base/build-rootfs.sh" "$@"
