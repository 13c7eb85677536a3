"""Hostile apps and the host's accounts: an app's files belong to the platform's uid alone.

Apps run as mop, whose uid and gid (``SLIPWAY_APP_UID``) no host account holds. An app tries
to give its files to host accounts (uid 1000, often a person; root; nobody); it fails, and
everything it and its build wrote on the host, the build cache and the instance volume, is
owned by the platform's uid, which ``pwd.getpwuid`` does not know.

Each attack asserts three things: it fails, the host is unchanged, the attacker learned nothing.
"""

# The fixtures imported from hostile.py are the tests' parameters of the same name:
# ruff: noqa: F811
from __future__ import annotations

import grp
import io
import os
import pwd
import stat
import tarfile
import time
from pathlib import Path

import pytest

from slipway.services.layout import MOP_GID, MOP_UID
from tests.integration.hostile import (
    Secrets,
    Tenant,
    assert_no_leak,
    create_app,
    deploy,
    host_secrets,
    host_unchanged,
    mallory,  # noqa: F401 (a fixture)
    planted,  # noqa: F401 (a fixture)
)
from tests.integration.platform import Platform

pytestmark = pytest.mark.slow

HOST_IDS = (1000, 0, 65534)  # the first person's account on most hosts, root, nobody

# The web process first tries to give a file of its own to each host id, then serves its
# report from /mnt/home/www.
RUN = """\
#!/bin/sh
mkdir -p /mnt/home/www
cd /mnt/home/www
echo mine > mine
{{
  echo "uid $(id -u) gid $(id -g) groups $(id -G)"
  for id in {ids}; do
    chown "$id:$id" mine 2>/dev/null && echo "chown $id done" || echo "chown $id refused"
    chgrp "$id" mine 2>/dev/null && echo "chgrp $id done" || echo "chgrp $id refused"
  done
  echo "owner $(stat -c %u:%g mine)"
}} > report
exec python3 -m http.server "$PORT"
"""


def archive() -> bytes:
    run = RUN.format(ids=" ".join(str(i) for i in HOST_IDS))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, body, mode in (
            ("requirements.txt", "", 0o644),  # a virtualenv, kept in the build cache
            ("Procfile", "web: sh run.sh\n", 0o644),
            ("run.sh", run, 0o755),
        ):
            data = body.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def owners(top: Path) -> dict[tuple[int, int], int]:
    """(uid, gid) -> how many entries of the tree have it; links are not followed."""
    found: dict[tuple[int, int], int] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in [".", *dirnames, *filenames]:
            st = os.lstat(os.path.join(dirpath, name))
            found[(st.st_uid, st.st_gid)] = found.get((st.st_uid, st.st_gid), 0) + 1
    return found


def instance_volumes(platform: Platform, app: str) -> list[Path]:
    return sorted(p for p in platform.settings.volumes_dir.glob(f"app-{app}-*") if p.is_dir())


def test_an_apps_files_belong_to_the_platforms_uid_and_to_no_host_account(
    running_platform: Platform,
    mallory: Tenant,
    planted: Secrets,
) -> None:
    app = create_app(running_platform, mallory, "uid")
    with host_unchanged():
        state, shown = deploy(running_platform, mallory, app, archive())
        assert state["state"] == "succeeded", state
        answer = running_platform.http_get_app(app, "/report")
        shown.append(answer.text)
    assert answer.status_code == 200, answer.text
    report = answer.text.splitlines()

    # The app runs as the platform's uid, and cannot give its files away to a host account.
    assert report[0] == f"uid {MOP_UID} gid {MOP_GID} groups {MOP_GID}"
    for host_id in HOST_IDS:
        assert f"chown {host_id} refused" in report and f"chgrp {host_id} refused" in report
    assert report[-1] == f"owner {MOP_UID}:{MOP_GID}"

    # On the host, everything its build and its process wrote is the platform's uid's.
    cache = running_platform.settings.cache_dir / app
    [volume] = instance_volumes(running_platform, app)
    for tree in (cache, volume):
        found = owners(tree)
        assert set(found) == {(MOP_UID, MOP_GID)}, (tree, found)
        assert sum(found.values()) > 3, (tree, found)  # the venv, the app, the report
    assert stat.S_IMODE(volume.stat().st_mode) == 0o755
    # ...and that uid and gid are no host account's.
    with pytest.raises(KeyError):
        pwd.getpwuid(MOP_UID)
    with pytest.raises(KeyError):
        grp.getgrgid(MOP_GID)
    assert_no_leak(shown, host_secrets(running_platform, planted))
