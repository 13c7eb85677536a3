"""Loop-mounted sparse ext4 files: thin (space is spent on write) with a hard cap.

For a volume ``name`` the provider keeps, under its root:

- ``<name>.img``      the sparse backing file, as long as the cap;
- ``<name>/``         the mount point (owned by mop once mounted);
- ``<name>.creating`` a marker that exists only while the volume is being made, so that
  :meth:`LoopfileProvider.recover` can tell a half-made volume from a finished one.

``lost+found`` is removed after ``mkfs`` so a fresh volume is empty and wholly mop's;
``e2fsck`` recreates it if a repair ever needs it.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from slipway.appuser import MOP_GID, MOP_UID
from slipway.volumes.base import Volume, VolumeError, VolumeUsage

MIN_SIZE = 16 * 1024**2  # ext4 with a journal needs a few MB; smaller caps make no sense
COMMAND_TIMEOUT = 120  # seconds; mkfs and mount of a sparse file take well under one

# Lazy inode tables and journal keep mkfs instant and the file sparse; nodiscard skips a
# pointless hole-punching pass over a file that is all holes already.
MKFS_OPTIONS = ["-q", "-F", "-m", "0", "-E", "nodiscard,lazy_itable_init=1,lazy_journal_init=1"]
MOUNT_OPTIONS = "loop,nosuid,nodev,noatime"

_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,127}")


def check_name(name: str) -> str:
    """Return ``name`` if it is a safe volume name, else raise :class:`VolumeError`."""
    if not _NAME.fullmatch(name) or ".." in name or name.endswith((".img", ".creating")):
        raise VolumeError(
            f"invalid volume name {name!r}: use lowercase letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    return name


def check_size(size: int) -> int:
    if size < MIN_SIZE:
        raise VolumeError(f"a volume must be at least {MIN_SIZE // 1024**2} MB, not {size} bytes")
    return size


def run_command(args: list[str], what: str) -> str:
    """Run a host command; on failure raise :class:`VolumeError` saying what failed and why."""
    try:
        done = subprocess.run(
            args, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
        )
    except FileNotFoundError as exc:
        raise VolumeError(f"cannot {what}: {args[0]} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise VolumeError(f"cannot {what}: {args[0]} took longer than {COMMAND_TIMEOUT}s") from exc
    if done.returncode != 0:
        reason = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
        raise VolumeError(f"cannot {what}: {reason}")
    return done.stdout


def mounted_points() -> set[Path]:
    """Every mount point of this mount namespace, from /proc/self/mountinfo."""
    points = set()
    with open("/proc/self/mountinfo") as info:
        for line in info:
            # Field 5 is the mount point, with spaces and the like written as octal escapes.
            raw = line.split()[4]
            points.add(Path(raw.encode().decode("unicode_escape")))
    return points


def unmount(path: Path, what: str) -> None:
    """Unmount ``path``; a busy mount is detached lazily so the caller can go on."""
    try:
        run_command(["umount", str(path)], what)
    except VolumeError:
        run_command(["umount", "-l", str(path)], what)


def remove_mount_point(point: Path) -> None:
    """Remove an unmounted, empty mount point; never delete anything through a live mount."""
    try:
        point.rmdir()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise VolumeError(f"cannot remove {point}: {exc.strerror}") from exc


def give_to_mop(path: Path) -> None:
    """Make a fresh filesystem's root mop's own and drop the root-owned lost+found."""
    shutil.rmtree(path / "lost+found", ignore_errors=True)
    os.chown(path, MOP_UID, MOP_GID)
    os.chmod(path, 0o755)


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    """Hold the provider's lock: one create, destroy or recover at a time, across processes."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class LoopfileProvider:
    """Volumes as sparse ext4 files loop-mounted under ``root``."""

    def __init__(self, root: Path) -> None:
        # Resolved, because /proc/self/mountinfo names mount points by their real path.
        self.root = root.resolve()

    # -- paths ------------------------------------------------------------------------------

    def _image(self, name: str) -> Path:
        return self.root / f"{name}.img"

    def _marker(self, name: str) -> Path:
        return self.root / f"{name}.creating"

    def _mount_point(self, name: str) -> Path:
        return self.root / name

    def _volume(self, name: str) -> Volume:
        return Volume(name, self._mount_point(name), self._image(name).stat().st_size)

    # -- the protocol -----------------------------------------------------------------------

    def create(self, name: str, size: int) -> Volume:
        check_name(name)
        check_size(size)
        with locked(self.root):
            if self._image(name).exists() and not self._marker(name).exists():
                return self._existing(name, size)
            self._discard(name)
            self._make(name, size)
            return self._volume(name)

    def get(self, name: str) -> Volume | None:
        check_name(name)
        if self._marker(name).exists() or not self._image(name).exists():
            return None
        if self._mount_point(name) not in mounted_points():
            return None
        return self._volume(name)

    def destroy(self, name: str) -> None:
        check_name(name)
        with locked(self.root):
            self._discard(name)

    def usage(self, name: str) -> VolumeUsage:
        volume = self.get(name)
        if volume is None:
            raise VolumeError(f"volume {name!r} does not exist or is not mounted")
        fs = os.statvfs(volume.path)
        used = (fs.f_blocks - fs.f_bfree) * fs.f_frsize
        allocated = self._image(name).stat().st_blocks * 512
        return VolumeUsage(used=used, size=volume.size, allocated=allocated)

    def list(self) -> list[Volume]:
        if not self.root.is_dir():
            return []
        names = sorted(p.name.removesuffix(".img") for p in self.root.glob("*.img"))
        return [self._volume(n) for n in names if not self._marker(n).exists()]

    def recover(self) -> builtins.list[str]:
        """Drop half-made volumes, unmount orphaned mounts, remount the unmounted ones."""
        if not self.root.is_dir():
            return []
        touched: list[str] = []
        with locked(self.root):
            for marker in sorted(self.root.glob("*.creating")):
                name = marker.name.removesuffix(".creating")
                self._discard(name)
                touched.append(name)
            mounted = mounted_points()
            for point in sorted(p for p in mounted if p.parent == self.root):
                if not self._image(point.name).exists():
                    unmount(point, f"unmount orphaned volume {point.name}")
                    self._release_loops(point.name)
                    remove_mount_point(point)
                    touched.append(point.name)
            for image in sorted(self.root.glob("*.img")):
                name = image.name.removesuffix(".img")
                if self._mount_point(name) not in mounted:
                    self._mount(name)
                    touched.append(name)
        return touched

    # -- the steps --------------------------------------------------------------------------

    def _existing(self, name: str, size: int) -> Volume:
        volume = self._volume(name)
        if volume.size != size:
            raise VolumeError(
                f"volume {name!r} already exists with a different size ({volume.size} bytes)"
            )
        if self._mount_point(name) not in mounted_points():
            self._mount(name)
        return volume

    def _make(self, name: str, size: int) -> None:
        self._marker(name).touch()
        image = self._image(name)
        with open(image, "wb") as f:
            os.truncate(f.fileno(), size)  # sparse: no block is written
        run_command(["mkfs.ext4", *MKFS_OPTIONS, str(image)], f"format volume {name}")
        self._mount(name)
        give_to_mop(self._mount_point(name))
        self._marker(name).unlink()

    def _mount(self, name: str) -> None:
        point = self._mount_point(name)
        point.mkdir(exist_ok=True)
        run_command(
            ["mount", "-o", MOUNT_OPTIONS, str(self._image(name)), str(point)],
            f"mount volume {name}",
        )

    def _discard(self, name: str) -> None:
        """Remove every trace of a volume, whatever state it is in."""
        point = self._mount_point(name)
        if point in mounted_points():
            unmount(point, f"unmount volume {name}")
        self._release_loops(name)
        remove_mount_point(point)
        self._image(name).unlink(missing_ok=True)
        self._marker(name).unlink(missing_ok=True)

    def _release_loops(self, name: str) -> None:
        """Detach loop devices still bound to the image (mount's autoclear missed after -l)."""
        image = self._image(name)
        if not image.exists():
            return
        found = run_command(["losetup", "-j", str(image)], f"find loop devices of {name}")
        for line in found.splitlines():
            device = line.split(":", 1)[0]
            with contextlib.suppress(VolumeError):
                run_command(["losetup", "-d", device], f"detach {device}")
