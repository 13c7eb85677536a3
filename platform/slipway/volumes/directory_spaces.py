"""Spaces as plain directories: for developers and hosts without btrfs. Checkpoints and forks
*copy* the data (``cp -a --reflink=auto``: shared blocks where the filesystem can, a full copy
where it cannot), so their time grows with it, and no cap is enforced: the size is only
recorded. Under ``root``:

- ``dirs/<key>/tree/``                     the space's tree (mop's);
- ``dirs/<key>/size``                      its recorded size, written by the platform;
- ``dirs/<key>/checkpoints/<name>/tree/``  a checkpoint: a copy of the tree at that time;
- ``dirs/<key>.creating``                  a marker that exists only while a space is being made.

A tree's contents are the app's, so the platform never walks them as root: copies and ``du`` run
as mop (when the platform is root), changed into the trees through descriptors root opened.
"""

from __future__ import annotations

import builtins
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from slipway.appuser import MOP_GID, MOP_UID
from slipway.volumes.spaces import (
    KEY,
    MIN_SIZE,
    SpaceError,
    SpaceUsage,
    check_checkpoint,
    check_key,
)

COPY_TIMEOUT = 3600  # seconds: a copy grows with the data
TREE = "tree"


class DirectorySpaces:
    """Spaces as directories under ``root``; checkpoints and forks are copies."""

    name = "directory"
    copies = True

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    # -- paths ------------------------------------------------------------------------------

    def _space(self, key: str) -> Path:
        return self.root / "dirs" / key

    def _marker(self, key: str) -> Path:
        return self.root / "dirs" / f"{key}.creating"

    def _tree(self, key: str) -> Path:
        return self._space(key) / TREE

    def _size_file(self, key: str) -> Path:
        return self._space(key) / "size"

    def _checkpoint(self, key: str, checkpoint: str) -> Path:
        return self._space(key) / "checkpoints" / checkpoint

    # -- the protocol -----------------------------------------------------------------------

    def create(self, key: str, size: int) -> Path:
        check_key(key)
        if size < MIN_SIZE:
            raise SpaceError(f"a space must be at least {MIN_SIZE // 1024**2} MB, not {size} bytes")
        if self.exists(key):
            recorded = self._recorded_size(key)
            if recorded != size:
                raise SpaceError(
                    f"space {key} already exists with a different size ({recorded} bytes)"
                )
            return self._tree(key)
        self._begin(key, size)
        _make_tree(self._tree(key))
        self._marker(key).unlink()
        return self._tree(key)

    def tree(self, key: str) -> Path:
        self._require(key)
        return self._tree(key)

    def exists(self, key: str) -> bool:
        check_key(key)
        return self._tree(key).is_dir() and not self._marker(key).exists()

    def checkpoint(self, key: str, checkpoint: str) -> None:
        self._require(key)
        check_checkpoint(checkpoint)
        target = self._checkpoint(key, checkpoint)
        if target.exists():
            raise SpaceError(f"space {key} already has a checkpoint named {checkpoint!r}")
        target.mkdir(parents=True)
        try:
            _copy_tree(self._tree(key), target / TREE, f"checkpoint space {key}")
        except SpaceError:
            _remove(target)
            raise

    def checkpoint_tree(self, key: str, checkpoint: str) -> Path:
        self._require(key)
        self._require_checkpoint(key, checkpoint)
        return self._checkpoint(key, checkpoint) / TREE

    def delete_checkpoint(self, key: str, checkpoint: str) -> None:
        check_key(key)
        check_checkpoint(checkpoint)
        _remove(self._checkpoint(key, checkpoint))

    def fork(self, key: str, checkpoint: str | None, new_key: str) -> Path:
        self._require(key)
        check_key(new_key)
        source = self._tree(key)
        if checkpoint is not None:
            self._require_checkpoint(key, checkpoint)
            source = self._checkpoint(key, checkpoint) / TREE
        if self.exists(new_key):
            raise SpaceError(f"space {new_key} already exists")
        self._begin(new_key, self._recorded_size(key))
        try:
            _copy_tree(source, self._tree(new_key), f"fork space {key}")
        except SpaceError:
            self.destroy(new_key)
            raise
        self._marker(new_key).unlink()
        return self._tree(new_key)

    def destroy(self, key: str) -> None:
        check_key(key)
        _remove(self._space(key))
        self._marker(key).unlink(missing_ok=True)

    def usage(self, key: str) -> SpaceUsage:
        self._require(key)
        out = _run_as_app(["du", "-sb", "."], f"measure space {key}", self._tree(key))
        return SpaceUsage(used=int(out.split()[0]), size=self._recorded_size(key))

    def keys(self) -> builtins.list[str]:
        dirs = self.root / "dirs"
        if not dirs.is_dir():
            return []
        found = [p.name for p in dirs.iterdir() if KEY.fullmatch(p.name)]
        return sorted((k for k in found if self.exists(k)), key=lambda k: int(k[3:]))

    def recover(self) -> builtins.list[str]:
        """Nothing to mount; drop half-made spaces."""
        dirs = self.root / "dirs"
        if not dirs.is_dir():
            return []
        touched = []
        for marker in sorted(dirs.glob("*.creating")):
            key = marker.name.removesuffix(".creating")
            if KEY.fullmatch(key):
                self.destroy(key)
                touched.append(key)
        return touched

    # -- the steps --------------------------------------------------------------------------

    def _require(self, key: str) -> None:
        if not self.exists(key):
            raise SpaceError(f"space {key} does not exist")

    def _require_checkpoint(self, key: str, checkpoint: str) -> None:
        check_checkpoint(checkpoint)
        if not (self._checkpoint(key, checkpoint) / TREE).is_dir():
            raise SpaceError(f"space {key} has no checkpoint named {checkpoint!r}")

    def _recorded_size(self, key: str) -> int:
        return int(self._size_file(key).read_text().strip())

    def _begin(self, key: str, size: int) -> None:
        """A clean directory for a new space, marked half-made until the caller finishes it."""
        self.destroy(key)
        self._space(key).parent.mkdir(parents=True, exist_ok=True)
        self._marker(key).touch()
        self._space(key).mkdir()
        self._size_file(key).write_text(f"{size}\n")


def _app_owner() -> tuple[int, int] | None:
    """mop when the platform is root; None (this process's own user) for a developer."""
    return (MOP_UID, MOP_GID) if os.geteuid() == 0 else None


def _make_tree(path: Path) -> None:
    path.mkdir(mode=0o755)
    owner = _app_owner()
    if owner is not None:
        os.chown(path, *owner)
    path.chmod(0o755)


def _copy_tree(source: Path, target: Path, what: str) -> None:
    """Copy a tree into a new tree ``target`` (mop's), as mop, through descriptors."""
    _make_tree(target)
    target_fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        _run_as_app(
            ["cp", "-a", "--reflink=auto", ".", f"/proc/self/fd/{target_fd}"],
            what,
            source,
            pass_fds=(target_fd,),
        )
    finally:
        os.close(target_fd)


def _run_as_app(args: list[str], what: str, directory: Path, pass_fds: tuple[int, ...] = ()) -> str:
    """Run a command as mop (when root) inside ``directory``, a tree the platform made.

    The child changes into the directory through a descriptor root opened (before it drops
    root), so mop needs no way through the data directory, and no path inside the tree is ever
    looked up by root.
    """
    switch: dict[str, Any] = {}
    owner = _app_owner()
    if owner is not None:
        switch = {"user": owner[0], "group": owner[1], "extra_groups": []}
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        done = subprocess.run(
            args,
            cwd=f"/proc/self/fd/{fd}",
            pass_fds=(fd, *pass_fds),
            capture_output=True,
            text=True,
            umask=0o022,
            timeout=COPY_TIMEOUT,
            check=False,
            **switch,
        )
    except subprocess.TimeoutExpired as exc:
        raise SpaceError(f"cannot {what}: {args[0]} took longer than {COPY_TIMEOUT}s") from exc
    finally:
        os.close(fd)
    if done.returncode != 0:
        reason = " ".join((done.stderr or done.stdout).split())[-300:]
        raise SpaceError(f"cannot {what}: {reason or f'exit status {done.returncode}'}")
    return done.stdout


def _remove(path: Path) -> None:
    """Remove a space's or a checkpoint's directory; one that does not exist is fine.

    shutil.rmtree works through directory descriptors and never follows a link
    (``rmtree.avoids_symlink_attacks``), so an app's links cannot lead root elsewhere.
    """
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
