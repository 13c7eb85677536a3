"""The platform's uid on this host: no host account may hold it, and files of an earlier one go.

Every container runs as mop with the uid and gid ``SLIPWAY_APP_UID``, and mop owns every app's
volumes and build cache. If a host user, group or subordinate-id range (``/etc/subuid``,
``/etc/subgid``, given to rootless containers and user namespaces) had that number, it would own
all the apps' files, and the apps its files: ``slipway server up`` refuses to start then.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import stat
from pathlib import Path

from slipway.config import Settings
from slipway.host.supervisor import HostError
from slipway.services.app_files import remove_tree

logger = logging.getLogger(__name__)

SUBUID = Path("/etc/subuid")
SUBGID = Path("/etc/subgid")
SETTING = "SLIPWAY_APP_UID"


def check_app_uid(settings: Settings, subuid: Path = SUBUID, subgid: Path = SUBGID) -> None:
    """Raise :class:`HostError` naming the account and the setting when the uid is taken."""
    uid = settings.app_uid
    holder = _account_holding(uid, subuid, subgid)
    if holder is not None:
        raise HostError(
            f"The app uid {uid} is already {holder} on this host: set {SETTING} to a number "
            "that no host user, group or subordinate-id range uses."
        )


def _account_holding(uid: int, subuid: Path, subgid: Path) -> str | None:
    """How the host already uses ``uid`` (as a uid or a gid), or None when it is free."""
    try:
        return f"the uid of the user {pwd.getpwuid(uid).pw_name!r}"
    except KeyError:
        pass
    try:
        return f"the gid of the group {grp.getgrgid(uid).gr_name!r}"
    except KeyError:
        pass
    for path, kind in ((subuid, "subordinate uids"), (subgid, "subordinate gids")):
        owner = _subordinate_owner(path, uid)
        if owner is not None:
            return f"one of the {kind} of {owner!r} ({path})"
    return None


def _subordinate_owner(path: Path, uid: int) -> str | None:
    """The account whose ``name:start:count`` range in ``path`` holds ``uid``."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return None
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) != 3 or not (parts[1].isdigit() and parts[2].isdigit()):
            continue  # comments, blank lines and malformed entries
        start, count = int(parts[1]), int(parts[2])
        if start <= uid < start + count:
            return parts[0]
    return None


def remove_caches_of_other_uids(settings: Settings) -> list[str]:
    """Remove build caches an earlier app uid owns (written before an upgrade or a change of
    ``SLIPWAY_APP_UID``): mop could no longer write them, and the next build makes a fresh one.

    They are the app's own bytes, so they are removed, never chowned: removing works through
    directory descriptors and follows no link (:func:`app_files.remove_tree`).
    """
    removed = []
    try:
        entries = list(os.scandir(settings.cache_dir))
    except FileNotFoundError:
        return []
    for entry in entries:
        info = entry.stat(follow_symlinks=False)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid in (0, os.geteuid(), settings.app_uid):
            continue  # root's and this process's own files, and caches of the current uid, stay
        logger.info("removing the build cache %s of uid %s", entry.path, info.st_uid)
        remove_tree(Path(entry.path))
        removed.append(entry.name)
    return sorted(removed)
