#!/usr/bin/env bash
# The base rootfs of Debian forky: base/build-rootfs.sh with its suite set.
exec env SLIPWAY_SUITE=forky bash "$(dirname "$0")/../base/build-rootfs.sh" "$@"
