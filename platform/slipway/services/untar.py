"""Extracting an untrusted tar archive through directory descriptors only.

Root on the host unpacks users' uploads, so nothing here ever hands a path string of the target
to the kernel: every parent directory is opened beneath the target's descriptor with no link
followed (:mod:`slipway.beneath`), and each entry is made relative to it (``O_CREAT | O_EXCL |
O_NOFOLLOW`` files, ``symlinkat``, ``mkdirat``). A symbolic link in the archive is created as it
is and never followed on the host, whatever it points at (a chain of links that ends at ``/``,
an absolute path): only the build container, which sees nothing of the host, follows it. An entry
under such a link is refused. A hard link is a copy of a regular file already extracted, opened
the same way. Files are owned by ``owner`` from their creation, modes are masked, and devices,
fifos and set-user-id bits never come out.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from slipway import beneath
from slipway.services.errors import Invalid, TooLarge

Rename = Callable[[str], str]
Owner = tuple[int, int]
MODE_MASK = 0o755  # keep the execute bits; drop set-user-id, sticky, group and other write
COPY_CHUNK = 1024 * 1024
FULL = (errno.ENOSPC, errno.EDQUOT)


class NoSpace(TooLarge):
    """The target's filesystem is full (or its quota is used up)."""


def safe_extract(
    tar: tarfile.TarFile,
    target: Path,
    rename: Rename | None = None,
    owner: Owner | None = None,
) -> None:
    """Extract every entry of ``tar`` into ``target``; :class:`Invalid` names the first bad one.

    ``rename`` maps an entry's name (and a hard link's target) to its name under ``target``;
    an empty result skips the entry. ``owner`` (uid, gid) owns ``target`` and all it gets.
    :class:`NoSpace` when the target's filesystem fills up.
    """
    target.mkdir(parents=True, exist_ok=True)
    with beneath.opened(beneath.open_root(target)) as root:
        if owner is not None:
            os.fchown(root, *owner)
        for member in tar:
            name = rename(member.name) if rename else member.name
            if name.strip("/") in ("", "."):
                continue
            try:
                _extract_one(tar, member, root, name, rename, owner)
            except beneath.Refused as exc:
                # ELOOP or ENOTDIR from the kernel: the same refusal, whichever it was.
                raise Invalid(
                    f"The archive writes through a symbolic link or a file: {member.name}."
                ) from exc
            except OSError as exc:
                if exc.errno in FULL:
                    raise NoSpace("The target is full.") from exc
                raise


def _extract_one(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    root: int,
    name: str,
    rename: Rename | None,
    owner: Owner | None,
) -> None:
    parts = _parts(name, member.name)
    if member.isdir():
        with beneath.opened(_make_dir(root, parts, owner)) as fd:
            os.fchmod(fd, (member.mode & MODE_MASK) | 0o700)
        return
    if not (member.isreg() or member.issym() or member.islnk()):
        raise Invalid(f"The archive contains an entry that is not allowed: {member.name}.")
    with beneath.opened(_make_dir(root, parts[:-1], owner)) as parent:
        leaf = parts[-1]
        if member.isreg():
            source = tar.extractfile(member)
            if source is None:
                raise Invalid(f"The archive entry {member.name} cannot be read.")
            with source:
                _write(parent, leaf, member, owner, lambda out: _copy_stream(source, out))
        elif member.issym():
            _clear(parent, leaf, member.name)
            os.symlink(member.linkname, leaf, dir_fd=parent)  # symlinkat: made, never followed
            if owner is not None:
                os.chown(leaf, *owner, dir_fd=parent, follow_symlinks=False)
        else:
            linked = rename(member.linkname) if rename else member.linkname
            with beneath.opened(_open_linked(root, linked, member.name)) as source_fd:
                _write(parent, leaf, member, owner, lambda out: _copy_fd(source_fd, out))


def _parts(name: str, shown: str) -> list[str]:
    try:
        parts = beneath.parts_of(name)
    except beneath.Refused:
        parts = []
    if not parts:
        raise Invalid(f"The archive contains a path that leaves its directory: {shown}.")
    return parts


def _make_dir(root: int, parts: list[str], owner: Owner | None) -> int:
    """The directory at ``parts`` (made as needed): one openat2 when it is already there."""
    path = "/".join(parts)
    try:
        return beneath.open_dir(root, path)
    except FileNotFoundError:
        return beneath.make_dirs(root, path, 0o755, owner)


def _open_linked(root: int, linked: str, shown: str) -> int:
    """The regular file a hard link names, opened beneath the root with no link followed."""
    missing = Invalid(f"The archive contains a hard link to a missing file: {shown}.")
    try:
        fd = beneath.open_beneath(root, linked, beneath.READ_FLAGS)
    except OSError as exc:
        raise missing from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise missing
    return fd


def _write(
    parent: int,
    leaf: str,
    member: tarfile.TarInfo,
    owner: Owner | None,
    fill: Callable[[int], None],
) -> None:
    """A new regular file ``leaf`` in ``parent`` (an earlier one of that name is replaced)."""
    _clear(parent, leaf, member.name)
    with beneath.opened(beneath.create_file(parent, leaf, 0o600, owner)) as out:
        fill(out)
        os.fchmod(out, (member.mode & MODE_MASK) | 0o600)
        os.utime(out, (member.mtime, member.mtime))


def _clear(parent: int, leaf: str, shown: str) -> None:
    """Remove what a later entry of the same name replaces (unlinkat: never followed)."""
    try:
        found = os.stat(leaf, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(found.st_mode):
        raise Invalid(f"The archive has a file where it already has a directory: {shown}.")
    os.unlink(leaf, dir_fd=parent)


def _copy_stream(source: IO[bytes], out: int) -> None:
    while chunk := source.read(COPY_CHUNK):
        _write_all(out, chunk)


def _copy_fd(source: int, out: int) -> None:
    while chunk := os.read(source, COPY_CHUNK):
        _write_all(out, chunk)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
