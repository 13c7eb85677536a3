#!/usr/bin/env bash
# Make the Slipway base rootfs: Debian bookworm (debootstrap minbase) + tini + ca-certificates,
# the unprivileged user mop (home /mnt/home), trimmed of docs and apt lists.
#   build-rootfs.sh OUT.tar UID
# SLIPWAY_SUITE names another suite (trixie, forky): the base-<suite> folders set it.
# UID is mop's uid and gid: the platform's setting SLIPWAY_APP_UID, a number no host account uses.
# The tarball is imported by `slipway server images build` (no registry needed). Needs root.
set -euo pipefail

out=${1:?usage: build-rootfs.sh OUT.tar UID}
uid=${2:?usage: build-rootfs.sh OUT.tar UID}
suite=${SLIPWAY_SUITE:-bookworm}
# This debootstrap may be older than the suite: testing (forky) bootstraps as sid does.
script=/usr/share/debootstrap/scripts/$suite
[ -e "$script" ] || script=/usr/share/debootstrap/scripts/sid

step() { echo "-----> $*"; }
fail() { echo "error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "building the base rootfs needs root (debootstrap and chroot)"
command -v debootstrap >/dev/null || fail "debootstrap is not installed (apt-get install debootstrap)"
[[ $uid =~ ^[1-9][0-9]*$ ]] || fail "mop's uid must be a positive number, not '$uid'"
[[ $suite =~ ^[a-z]+$ ]] || fail "not a Debian suite: '$suite'"

# The host's own Debian mirrors, so the image uses whatever the host is configured to reach.
host_uris() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] && sed -n 's/^URIs:[[:space:]]*//p' "$f"
  done
  if [ -e /etc/apt/sources.list ]; then
    sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]\+\).*/\2/p' \
      /etc/apt/sources.list
  fi
}
mirror=$(host_uris | tr ' ' '\n' | grep -v -- '-security' | grep -m1 '^https\?://' || true)
security=$(host_uris | tr ' ' '\n' | grep -- '-security' | grep -m1 '^https\?://' || true)
[ -n "$mirror" ] || fail "no Debian mirror found in the host's apt sources"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs

step "debootstrap $suite (minbase) from $mirror"
debootstrap --variant=minbase --include=tini,ca-certificates "$suite" "$root" "$mirror" "$script" \
  > "$work/debootstrap.log" 2>&1 || { tail -n 20 "$work/debootstrap.log"; fail "debootstrap failed"; }

step "Configuring apt and dpkg"
testing=$([ "$(basename "$script")" = sid ] && echo yes || echo no)
{
  echo "deb $mirror $suite main"
  if [ "$testing" = no ]; then
    echo "deb $mirror $suite-updates main"
    if [ -n "$security" ]; then echo "deb $security $suite-security main"; fi
  fi
} > "$root/etc/apt/sources.list"
cat > "$root/etc/apt/apt.conf.d/90slipway" <<'CONF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
CONF
# A testing suite's Release file is valid for a week only: a mirror that lags must still do.
if [ "$testing" = yes ]; then
  echo 'Acquire::Check-Valid-Until "false";' >> "$root/etc/apt/apt.conf.d/90slipway"
fi
cat > "$root/etc/dpkg/dpkg.cfg.d/90slipway-nodoc" <<'CONF'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
CONF
# Package scripts must never start services inside an image build.
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"

step "Adding user mop (uid and gid $uid, home /mnt/home)"
chroot "$root" groupadd --gid "$uid" mop
# --no-log-init: useradd would otherwise grow the lastlog/faillog files to the uid's offset.
chroot "$root" useradd --uid "$uid" --gid "$uid" --home-dir /mnt/home --no-create-home \
  --no-log-init --shell /bin/bash mop
# The /mnt layout, so the image also works without a volume (and package scripts run in image
# builds find TMPDIR); at run time the platform's volume is mounted over it.
for dir in app home log notifications tmp; do
  install -d -o "$uid" -g "$uid" -m 0755 "$root/mnt/$dir"
done
chmod 1777 "$root/mnt/tmp"
# Apps written for Heroku or Dokku expect to live at /app: it is the app's directory in builds
# (OUTPUT), release phases, instances and one-off runs alike, without moving anything.
ln -s /mnt/app "$root/app"

step "Trimming docs, caches and apt lists"
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
  "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
  "$root"/var/log/* "$root"/tmp/* "$root"/dev/*
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +

step "Packing the rootfs"
tar --numeric-owner --xattrs -C "$root" -cf "$out" .
echo "       $(du -h "$out" | cut -f1) $out"
