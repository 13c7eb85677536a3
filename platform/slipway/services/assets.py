"""Assets volumes (StartOS's): the app's ``assets/`` directory, kept out of the slug and mounted
read-only at ``/mnt/assets`` in its containers.

After a build, a top-level ``assets/`` *directory* of the output (a link or a file of that name
stays in the slug as it is) is packed on its own into the release's assets tarball, the same way
and as the same user (mop) as the slug, and left out of the slug. So ``assets/img/logo.png`` of
the source is ``/mnt/assets/img/logo.png`` in every instance, and ``/mnt/app/assets`` does not
exist.

An instance of a release with assets mounts ``<assets dir>/<app>/<release id>/tree``: unpacked
from the tarball once per release and host, by tar running as mop (as a slug is unpacked) into
a directory root made. Root writes ``.ready`` beside it only once the unpacking succeeded, so a
tree a crash left half-unpacked is unpacked again. The trees go when their release is pruned and
with the app.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from slipway import beneath
from slipway.config import Settings
from slipway.locks import file_lock
from slipway.models import Release
from slipway.runtime.base import Mount
from slipway.services import app_files, layout

ASSETS = "assets"  # the directory of the build output (the app root) that becomes the volume
MOUNT_POINT = f"{layout.RUN_ROOT}/{ASSETS}"
READY = ".ready"
UNPACK_WAIT = 300.0  # seconds another worker may take to unpack the same release's assets


def has_assets(output_dir: Path) -> bool:
    """Whether the build output has a top-level ``assets`` that is a real directory."""
    with beneath.opened(beneath.open_root(output_dir)) as root:
        try:
            found = os.stat(ASSETS, dir_fd=root, follow_symlinks=False)
        except FileNotFoundError:
            return False
    return stat.S_ISDIR(found.st_mode)


def pack_assets(output_dir: Path, target: Path) -> None:
    """Pack the output's ``assets/`` directory into ``target``, as the slug is packed (as mop,
    never through a link)."""
    with (
        beneath.opened(beneath.open_root(output_dir)) as root,
        beneath.opened(beneath.open_dir(root, ASSETS)) as tree,
    ):
        layout.pack_tree(tree, target, "pack the assets")


def release_dir(settings: Settings, app: str, release_id: int) -> Path:
    return settings.assets_dir / app / str(release_id)


def unpacked_tree(settings: Settings, app: str, release: Release) -> Path:
    """The release's assets unpacked on this host (done once, then reused); its ``tree``."""
    return unpacked(settings, app, release.id, Path(release.assets_path))


def unpacked(settings: Settings, app: str, release_id: int, tarball: Path) -> Path:
    """The assets tarball of release ``release_id`` unpacked on this host (once); its ``tree``."""
    base = release_dir(settings, app, release_id)
    tree = base / "tree"
    if (base / READY).is_file():
        return tree
    busy = f"The assets of {app} are still being unpacked by another worker; try again."
    # Several instances of one release may start at once (a scale, two workers).
    with file_lock(base.with_name(f"{release_id}.lock"), UNPACK_WAIT, busy):
        if (base / READY).is_file():
            return tree
        base.mkdir(parents=True, exist_ok=True)
        app_files.remove_tree(tree)  # half-unpacked by a worker that died
        layout.unpack_slug(tarball, tree, "unpack the assets")
        ready = base / READY
        with ready.open("w") as marker:
            os.fsync(marker.fileno())
    return tree


def mounts(settings: Settings, app: str, release: Release) -> list[Mount]:
    """The release's assets at ``/mnt/assets``, read-only; none when it has no assets."""
    return mounts_of(settings, app, release.id, release.assets_path)


def mounts_of(settings: Settings, app: str, release_id: int, assets_path: str) -> list[Mount]:
    """:func:`mounts` from a release's id and assets path (a one-off run's plan)."""
    if not assets_path:
        return []
    tree = unpacked(settings, app, release_id, Path(assets_path))
    return [Mount(tree, MOUNT_POINT, read_only=True)]


def remove_unpacked(settings: Settings, app: str, release_ids: Iterable[int]) -> None:
    """Remove the unpacked assets of these releases of the app (pruned releases)."""
    for release_id in release_ids:
        base = release_dir(settings, app, release_id)
        app_files.remove_tree(base)
        base.with_name(f"{release_id}.lock").unlink(missing_ok=True)
