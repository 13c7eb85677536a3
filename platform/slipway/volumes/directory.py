"""Plain directories: no cap at all. For unprivileged development only.

The size asked for is remembered and reported, but nothing enforces it: an app can fill the
host's disk. Use ``loopfile`` (the default) or ``lvm`` anywhere that matters.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import shutil
from pathlib import Path

from slipway.appuser import MOP_GID, MOP_UID
from slipway.volumes.base import Volume, VolumeError, VolumeUsage
from slipway.volumes.loopfile import check_name

_SIZE_FILE = ".size"  # beside the directory, not inside it, so the app never sees it


class DirectoryProvider:
    """Volumes as directories under ``root``, chowned to mop when the process may do so."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, name: str) -> Path:
        return self.root / name

    def _size_file(self, name: str) -> Path:
        return self.root / f"{name}{_SIZE_FILE}"

    def _volume(self, name: str) -> Volume:
        try:
            size = int(self._size_file(name).read_text())
        except (FileNotFoundError, ValueError):
            size = 0
        return Volume(name, self._path(name), size)

    def create(self, name: str, size: int) -> Volume:
        check_name(name)
        path = self._path(name)
        try:
            path.mkdir(parents=True, exist_ok=True)
            self._size_file(name).write_text(str(size))
        except OSError as exc:
            raise VolumeError(f"cannot create volume {name}: {exc.strerror}") from exc
        # An unprivileged developer cannot chown; the directory is theirs then, which is fine.
        with contextlib.suppress(PermissionError):
            os.chown(path, MOP_UID, MOP_GID)
        return self._volume(name)

    def get(self, name: str) -> Volume | None:
        check_name(name)
        return self._volume(name) if self._path(name).is_dir() else None

    def destroy(self, name: str) -> None:
        check_name(name)
        shutil.rmtree(self._path(name), ignore_errors=True)
        self._size_file(name).unlink(missing_ok=True)

    def usage(self, name: str) -> VolumeUsage:
        volume = self.get(name)
        if volume is None:
            raise VolumeError(f"volume {name!r} does not exist")
        used = _tree_size(volume.path)
        return VolumeUsage(used=used, size=volume.size, allocated=used)

    def list(self) -> list[Volume]:
        if not self.root.is_dir():
            return []
        return [self._volume(p.name) for p in sorted(self.root.iterdir()) if p.is_dir()]

    def recover(self) -> builtins.list[str]:
        """Nothing to remount or clean: a directory survives a crash as it was."""
        return []


def _tree_size(root: Path) -> int:
    total = 0
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total
