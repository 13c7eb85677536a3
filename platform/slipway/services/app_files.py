"""The files an app leaves on the host outside the database: build cache, git repository, logs,
unpacked assets.

They go with the app, and a new app that takes a freed name is first cleared of any that are
still there (a platform that crashed half-way through a removal leaves some), so it starts empty.

The build cache is written by the app's own builds (as mop, inside containers), so it is removed
with :func:`shutil.rmtree`, which on Linux works through directory file descriptors and never
follows a link out of the tree.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from slipway.config import Settings

logger = logging.getLogger(__name__)


def cache_path(settings: Settings, app: str) -> Path:
    return settings.cache_dir / app


def git_paths(settings: Settings, app: str) -> list[Path]:
    """The app's bare repository and its push lock."""
    return [settings.git_dir / f"{app}.git", settings.git_dir / f"{app}.push.lock"]


def remove_tree(path: Path) -> None:
    """Remove a file or a whole tree at ``path`` without following links; missing is fine."""
    try:
        if path.is_symlink() or not path.is_dir():
            path.unlink()
            return
    except FileNotFoundError:
        return
    if not shutil.rmtree.avoids_symlink_attacks:  # only platforms without fd-based rmtree
        raise RuntimeError("this platform cannot remove an untrusted tree safely")
    shutil.rmtree(path, onerror=_log_failure)


def _log_failure(function: object, path: str, info: tuple[type, BaseException, object]) -> None:
    if not isinstance(info[1], FileNotFoundError):
        logger.warning("could not remove %s: %s", path, info[1])


def remove_files(paths: Iterable[Path], inside: Path) -> None:
    """Remove each path that lies inside ``inside`` (a row's path is never trusted blindly)."""
    root = os.path.realpath(inside)
    for path in paths:
        parent = os.path.realpath(path.parent)
        if parent == root or parent.startswith(root + os.sep):
            remove_tree(path)


def remove_app_files(settings: Settings, app: str, log_folder: str | None = None) -> None:
    """Remove the app's build cache, git repository, unpacked assets and (with its folder name)
    kept logs."""
    remove_tree(cache_path(settings, app))
    remove_tree(settings.assets_dir / app)
    for path in git_paths(settings, app):
        remove_tree(path)
    if log_folder:
        remove_files([settings.old_logs_dir / log_folder], settings.old_logs_dir)
