"""Spaces as btrfs subvolumes of one pool, each holding a loop-mounted ext4 image.

Checkpoints and forks are btrfs snapshots: they take the same few milliseconds whatever the
space holds. The cap is the length of each space's ext4 image, so writing past it gives "No space
left on device" inside that space and nowhere else. Under ``root`` (``SLIPWAY_DATA_DIR/spaces``):

- ``pool.img``                     the pool: a sparse file holding one btrfs filesystem;
- ``pool/``                        where it is mounted, holding
  - ``live/<key>/disk.img``        one subvolume per space (no copy-on-write for new files, so
                                   the image is rewritten in place) with its sparse ext4 image,
  - ``live/<key>.creating``        a marker that exists only while a space is being made,
  - ``checkpoints/<key>/<name>/``  read-only snapshots of that subvolume;
- ``mounts/<key>/``                the space's ext4, root's, holding ``tree/``: mop's, the one
                                   directory containers bind;
- ``checkpoint-mounts/<key>/<name>/``  a checkpoint's ext4, mounted read-only for a backup.

ext4 inside btrfs, rather than btrfs subvolumes with qgroups as the trees: an ext4 image gives a
hard cap that counts exactly what the app wrote, and its statfs is the space's own, while
qgroup limits count shared extents in ways that make a fork's cap hard to explain. A snapshot
of a frozen ext4 image is a clean filesystem, so a checkpoint or a fork mounts without a repair.

Every change holds one file lock (``root/.lock``) so API workers and the celery worker never
race to make or mount the pool or a space.
"""

from __future__ import annotations

import builtins
import contextlib
import os
from pathlib import Path

from slipway.appuser import MOP_GID, MOP_UID
from slipway.volumes.base import VolumeError
from slipway.volumes.loopfile import (
    MKFS_OPTIONS,
    MOUNT_OPTIONS,
    locked,
    mounted_points,
    run_command,
)
from slipway.volumes.spaces import (
    KEY,
    MIN_SIZE,
    SpaceError,
    SpaceUsage,
    check_checkpoint,
    check_key,
)

# discard=async: space freed in the pool (a deleted space or checkpoint) is punched out of the
# sparse pool image, so the host gets it back.
POOL_MOUNT_OPTIONS = "loop,nosuid,nodev,noatime,discard=async"
# noload: a checkpoint sits on a read-only snapshot, so its journal must not be replayed.
CHECKPOINT_MOUNT_OPTIONS = "loop,ro,noload,nosuid,nodev,noexec,noatime"
IMAGE = "disk.img"
TREE = "tree"
PACKAGES = {"mkfs.btrfs": "btrfs-progs", "btrfs": "btrfs-progs", "fsfreeze": "util-linux"}


def run(args: list[str], what: str) -> str:
    """Run a host command; on failure raise :class:`SpaceError` saying what failed and why."""
    try:
        return run_command(args, what)
    except VolumeError as exc:
        message = str(exc)
        package = PACKAGES.get(args[0])
        if package and message.endswith("is not installed"):
            message += f" (install the {package} package)"
        raise SpaceError(message) from exc


class BtrfsSpaces:
    """Spaces as ext4 images in btrfs subvolumes of a sparse pool image under ``root``."""

    name = "btrfs"
    copies = False

    def __init__(self, root: Path, pool_size: int) -> None:
        # Resolved, because /proc/self/mountinfo names mount points by their real path.
        self.root = root.resolve()
        self.pool_size = pool_size

    # -- paths ------------------------------------------------------------------------------

    @property
    def pool_image(self) -> Path:
        return self.root / "pool.img"

    @property
    def pool(self) -> Path:
        return self.root / "pool"

    def _live(self, key: str) -> Path:
        return self.pool / "live" / key

    def _marker(self, key: str) -> Path:
        return self.pool / "live" / f"{key}.creating"

    def _image(self, key: str) -> Path:
        return self._live(key) / IMAGE

    def _mount_point(self, key: str) -> Path:
        return self.root / "mounts" / key

    def _checkpoints(self, key: str) -> Path:
        return self.pool / "checkpoints" / key

    def _snapshot(self, key: str, checkpoint: str) -> Path:
        return self._checkpoints(key) / checkpoint

    def _checkpoint_mounts(self, key: str) -> Path:
        return self.root / "checkpoint-mounts" / key

    # -- the protocol -----------------------------------------------------------------------

    def create(self, key: str, size: int) -> Path:
        """Make and mount an empty space; asked again for the same key and size, the space that
        is there (mounted) is returned, so a retried create does not fail."""
        check_key(key)
        if size < MIN_SIZE:
            raise SpaceError(f"a space must be at least {MIN_SIZE // 1024**2} MB, not {size} bytes")
        with locked(self.root):
            self._open_pool(create=True)
            if self._finished(key):
                return self._existing(key, size)
            self._discard(key)
            self._check_room(size)
            self._marker(key).touch()
            live = self._live(key)
            run(["btrfs", "subvolume", "create", str(live)], f"create space {key}")
            # New files in the subvolume are not copy-on-write: the image is rewritten in place
            # until a snapshot shares its blocks.
            run(["chattr", "+C", str(live)], f"create space {key}")
            with open(self._image(key), "wb") as image:
                os.truncate(image.fileno(), size)  # sparse: no block is written
            run(["mkfs.ext4", *MKFS_OPTIONS, str(self._image(key))], f"format space {key}")
            self._mount(key)
            self._make_tree(key)
            self._marker(key).unlink()
        return self._tree_path(key)

    def tree(self, key: str) -> Path:
        check_key(key)
        if self._mount_point(key) not in mounted_points():
            # After a host restart, before `slipway server up` recovered: mount it now.
            with locked(self.root):
                if not self._open_pool(create=False) or not self._finished(key):
                    raise SpaceError(f"space {key} does not exist")
                if self._mount_point(key) not in mounted_points():
                    self._mount(key)
        return self._tree_path(key)

    def exists(self, key: str) -> bool:
        check_key(key)
        if not self._pool_mounted():
            with locked(self.root):
                if not self._open_pool(create=False):
                    return False
        return self._finished(key)

    def checkpoint(self, key: str, checkpoint: str) -> None:
        check_key(key)
        check_checkpoint(checkpoint)
        with locked(self.root):
            self._require(key)
            snapshot = self._snapshot(key, checkpoint)
            if snapshot.exists():
                raise SpaceError(f"space {key} already has a checkpoint named {checkpoint!r}")
            snapshot.parent.mkdir(parents=True, exist_ok=True)
            self._frozen_snapshot(key, snapshot, read_only=True)

    def checkpoint_tree(self, key: str, checkpoint: str) -> Path:
        check_key(key)
        check_checkpoint(checkpoint)
        with locked(self.root):
            self._require(key)
            self._require_checkpoint(key, checkpoint)
            point = self._checkpoint_mounts(key) / checkpoint
            if point not in mounted_points():
                point.mkdir(parents=True, exist_ok=True)
                image = self._snapshot(key, checkpoint) / IMAGE
                run(
                    ["mount", "-o", CHECKPOINT_MOUNT_OPTIONS, str(image), str(point)],
                    f"mount checkpoint {checkpoint!r} of space {key}",
                )
        return point / TREE

    def delete_checkpoint(self, key: str, checkpoint: str) -> None:
        check_key(key)
        check_checkpoint(checkpoint)
        with locked(self.root):
            if not self._open_pool(create=False):
                return
            self._unmount_checkpoint(key, checkpoint)
            self._delete_subvolume(self._snapshot(key, checkpoint), f"checkpoint {checkpoint!r}")

    def fork(self, key: str, checkpoint: str | None, new_key: str) -> Path:
        check_key(key)
        check_key(new_key)
        if checkpoint is not None:
            check_checkpoint(checkpoint)
        with locked(self.root):
            self._require(key)
            if checkpoint is not None:
                self._require_checkpoint(key, checkpoint)
            if self._finished(new_key):
                raise SpaceError(f"space {new_key} already exists")
            self._discard(new_key)
            self._check_room(self._image(key).stat().st_size)
            self._marker(new_key).touch()
            if checkpoint is None:
                self._frozen_snapshot(key, self._live(new_key), read_only=False)
            else:
                run(
                    ["btrfs", "subvolume", "snapshot"]
                    + [str(self._snapshot(key, checkpoint)), str(self._live(new_key))],
                    f"fork space {key} at checkpoint {checkpoint!r}",
                )
            self._mount(new_key)
            self._marker(new_key).unlink()
        return self._tree_path(new_key)

    def destroy(self, key: str) -> None:
        check_key(key)
        with locked(self.root):
            self._open_pool(create=False)
            self._discard(key)

    def usage(self, key: str) -> SpaceUsage:
        tree = self.tree(key)
        fs = os.statvfs(tree.parent)
        size = self._image(key).stat().st_size
        # What the app can no longer write, ext4's own overhead included (a sixth of a 64 MB
        # space): a full space reads as its whole size, and 90% means nearly out of room.
        return SpaceUsage(used=max(0, size - fs.f_bavail * fs.f_frsize), size=size)

    def keys(self) -> builtins.list[str]:
        if not self._pool_mounted():
            with locked(self.root):
                if not self._open_pool(create=False):
                    return []
        return self._keys()

    def recover(self) -> builtins.list[str]:
        """Mount the pool and every space that is not mounted; drop half-made spaces."""
        if not self.pool_image.exists():
            return []
        touched: list[str] = []
        with locked(self.root):
            self._open_pool(create=False)
            for marker in sorted((self.pool / "live").glob("*.creating")):
                key = marker.name.removesuffix(".creating")
                if KEY.fullmatch(key):
                    self._discard(key)
                    touched.append(key)
            mounted = mounted_points()
            for key in self._keys():
                if self._mount_point(key) not in mounted:
                    self._mount(key)
                    touched.append(key)
                else:
                    # A process killed while it held the freeze of a checkpoint (under the lock
                    # that is ours now) left the space frozen: every write in it would wait.
                    _thaw(self._mount_point(key))
        return touched

    def unmount_all(self) -> None:
        """Unmount every space, checkpoint and the pool, and free their loop devices; the data
        stays in ``pool.img`` (for tests and a data directory about to be removed)."""
        if not self.root.is_dir():
            return
        with locked(self.root):
            for point in sorted(mounted_points(), key=lambda p: len(p.parts), reverse=True):
                if self.root in point.parents:
                    _unmount(point, f"unmount {point.name}")
            self._release_loops(self.pool_image)

    # -- the steps --------------------------------------------------------------------------

    def _pool_mounted(self) -> bool:
        return self.pool in mounted_points()

    def _open_pool(self, create: bool) -> bool:
        """Mount the pool (made first when ``create``); whether there is one. Under the lock."""
        if self._pool_mounted():
            return True
        if not self.pool_image.exists():
            if not create:
                return False
            self._make_pool()
        self.pool.mkdir(exist_ok=True)
        run(
            ["mount", "-o", POOL_MOUNT_OPTIONS, str(self.pool_image), str(self.pool)],
            "mount the spaces pool",
        )
        for name in ("live", "checkpoints"):
            (self.pool / name).mkdir(mode=0o700, exist_ok=True)
        return True

    def _make_pool(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        making = self.root / "pool.img.creating"
        making.unlink(missing_ok=True)
        with open(making, "wb") as image:
            os.truncate(image.fileno(), self.pool_size)  # sparse: the host spends what is written
        try:
            run(["mkfs.btrfs", "-q", str(making)], "make the spaces pool")
        except SpaceError:
            making.unlink(missing_ok=True)
            raise
        os.replace(making, self.pool_image)

    def _finished(self, key: str) -> bool:
        return self._live(key).is_dir() and not self._marker(key).exists()

    def _require(self, key: str) -> None:
        if not self._open_pool(create=False) or not self._finished(key):
            raise SpaceError(f"space {key} does not exist")

    def _require_checkpoint(self, key: str, checkpoint: str) -> None:
        if not self._snapshot(key, checkpoint).is_dir():
            raise SpaceError(f"space {key} has no checkpoint named {checkpoint!r}")

    def _existing(self, key: str, size: int) -> Path:
        actual = self._image(key).stat().st_size
        if actual != size:
            raise SpaceError(f"space {key} already exists with a different size ({actual} bytes)")
        if self._mount_point(key) not in mounted_points():
            self._mount(key)
        return self._tree_path(key)

    def _keys(self) -> builtins.list[str]:
        live = self.pool / "live"
        if not live.is_dir():
            return []
        found = [p.name for p in live.iterdir() if KEY.fullmatch(p.name) and p.is_dir()]
        return sorted((k for k in found if self._finished(k)), key=lambda k: int(k[3:]))

    def _check_room(self, size: int) -> None:
        """Refuse a space when the caps of all would pass the pool: a full pool would fail
        writes in every space, not just the one that filled it."""
        reserved = sum(self._image(k).stat().st_size for k in self._keys())
        if reserved + size > self.pool_size:
            left = max(self.pool_size - reserved, 0)
            raise SpaceError(
                f"the spaces pool has {left // 1024**2} MB left for new spaces, not "
                f"{size // 1024**2} MB: delete spaces or raise SLIPWAY_SPACES_POOL_SIZE"
            )

    def _tree_path(self, key: str) -> Path:
        return self._mount_point(key) / TREE

    def _mount(self, key: str) -> None:
        point = self._mount_point(key)
        point.mkdir(parents=True, exist_ok=True)
        run(
            ["mount", "-o", MOUNT_OPTIONS, str(self._image(key)), str(point)],
            f"mount space {key}",
        )

    def _make_tree(self, key: str) -> None:
        """The filesystem's root stays root's; ``tree/`` inside it is mop's, and the only thing
        containers see, so an app can never unlink or replace the mount's root."""
        point = self._mount_point(key)
        (point / "lost+found").rmdir()  # empty on a fresh filesystem
        tree = point / TREE
        tree.mkdir(mode=0o755)
        os.chown(tree, MOP_UID, MOP_GID)
        tree.chmod(0o755)

    def _frozen_snapshot(self, key: str, target: Path, read_only: bool) -> None:
        """Snapshot a space's subvolume while its ext4 is frozen, so the image is consistent."""
        args = ["btrfs", "subvolume", "snapshot", *(["-r"] if read_only else [])]
        args += [str(self._live(key)), str(target)]
        point = self._mount_point(key)
        what = f"snapshot space {key}"
        if point not in mounted_points():
            run(args, what)
            return
        # Written-back outside the freeze, so the freeze itself stays short.
        run(["sync", "-f", str(point)], what)
        run(["fsfreeze", "-f", str(point)], f"freeze space {key}")
        try:
            run(args, what)
        finally:
            run(["fsfreeze", "-u", str(point)], f"unfreeze space {key}")

    def _unmount_checkpoint(self, key: str, checkpoint: str) -> None:
        point = self._checkpoint_mounts(key) / checkpoint
        if point in mounted_points():
            _unmount(point, f"unmount checkpoint {checkpoint!r} of space {key}")
        _remove_dir(point)
        self._release_loops(self._snapshot(key, checkpoint) / IMAGE)

    def _discard(self, key: str) -> None:
        """Remove every trace of a space, whatever state it is in; under the lock."""
        mounts = self._checkpoint_mounts(key)
        if mounts.is_dir():
            for point in sorted(mounts.iterdir()):
                self._unmount_checkpoint(key, point.name)
            _remove_dir(mounts)
        point = self._mount_point(key)
        if point in mounted_points():
            _unmount(point, f"unmount space {key}")
        _remove_dir(point)
        if not self._pool_mounted():
            return
        self._release_loops(self._image(key))
        checkpoints = self._checkpoints(key)
        if checkpoints.is_dir():
            for snapshot in sorted(checkpoints.iterdir()):
                self._delete_subvolume(snapshot, f"checkpoint {snapshot.name!r} of space {key}")
            _remove_dir(checkpoints)
        self._delete_subvolume(self._live(key), f"space {key}")
        self._marker(key).unlink(missing_ok=True)

    def _delete_subvolume(self, path: Path, what: str) -> None:
        if path.is_dir():
            run(["btrfs", "subvolume", "delete", str(path)], f"delete {what}")

    def _release_loops(self, image: Path) -> None:
        """Detach loop devices still bound to an image (a lazy unmount leaves them)."""
        if not image.exists():
            return
        found = run(["losetup", "-j", str(image)], f"find loop devices of {image.name}")
        for line in found.splitlines():
            device = line.split(":", 1)[0]
            with contextlib.suppress(SpaceError):
                run(["losetup", "-d", device], f"detach {device}")


def _thaw(point: Path) -> None:
    """Unfreeze a mounted filesystem if it is frozen (fsfreeze fails when it is not)."""
    with contextlib.suppress(SpaceError):
        run(["fsfreeze", "-u", str(point)], f"unfreeze {point.name}")


def _unmount(point: Path, what: str) -> None:
    """Unmount; a busy mount (a container still binds it) is detached lazily. A frozen
    filesystem is thawed first: a freeze would keep it, and its loop device, alive unmounted."""
    _thaw(point)
    try:
        run(["umount", str(point)], what)
    except SpaceError:
        run(["umount", "-l", str(point)], what)


def _remove_dir(path: Path) -> None:
    """Remove an empty directory root made (a mount point); never anything through a mount."""
    try:
        path.rmdir()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise SpaceError(f"cannot remove {path}: {exc.strerror}") from exc
