"""Extracting a tar archive without ever writing outside the target directory.

Written against the tarfile API every Python 3.11 has: the extraction filters
(``filter="data"``) exist only from 3.11.4, and Debian 12's own Python is 3.11.2.
Entries are written one by one as plain files owned by whoever extracts them: no devices,
no fifos, no set-user-id bits, nothing through a symlink, nothing outside ``target``.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

from slipway.services.errors import Invalid

Rename = Callable[[str], str]
MODE_MASK = 0o755  # keep the execute bits; drop set-user-id, sticky, group and other write


def safe_extract(
    tar: tarfile.TarFile,
    target: Path,
    rename: Rename | None = None,
) -> None:
    """Extract every entry of ``tar`` into ``target``; :class:`Invalid` names the first bad one.

    ``rename`` maps an entry's name (and a hard link's target) to its name under ``target``;
    an empty result skips the entry.
    """
    root = target.resolve()
    root.mkdir(parents=True, exist_ok=True)
    for member in tar:
        name = rename(member.name) if rename else member.name
        if name.strip("/") in ("", "."):
            continue
        dest = _destination(root, name, member.name)
        if member.isdir():
            dest.mkdir(parents=True, exist_ok=True)
            dest.chmod((member.mode & MODE_MASK) | 0o700)
        elif member.isreg():
            _write_file(tar, member, dest)
        elif member.issym():
            _check_symlink(root, dest, member)
            _clear(dest)
            os.symlink(member.linkname, dest)
        elif member.islnk():
            linked = rename(member.linkname) if rename else member.linkname
            source = _destination(root, linked, member.name)
            if not source.is_file() or source.is_symlink():
                raise Invalid(f"The archive contains a hard link to a missing file: {member.name}.")
            _clear(dest)
            shutil.copy2(source, dest)  # a copy: a hard link could tie two volumes' files
        else:
            raise Invalid(f"The archive contains an entry that is not allowed: {member.name}.")


def _destination(root: Path, name: str, shown: str) -> Path:
    """``root/name``, refused unless it stays inside ``root`` with no symlink on the way."""
    if name.startswith("/") or ".." in name.split("/"):
        raise Invalid(f"The archive contains a path that leaves its directory: {shown}.")
    dest = root.joinpath(*[part for part in name.split("/") if part not in ("", ".")])
    parent = dest.parent
    parent.mkdir(parents=True, exist_ok=True)
    # realpath differs from the plain path exactly when a component is a symlink.
    if os.path.realpath(parent) != str(parent):
        raise Invalid(f"The archive writes through a symbolic link: {shown}.")
    return dest


def _check_symlink(root: Path, dest: Path, member: tarfile.TarInfo) -> None:
    pointed = os.path.normpath(os.path.join(dest.parent, member.linkname))
    if member.linkname.startswith("/") or not (pointed + "/").startswith(str(root) + "/"):
        raise Invalid(f"The archive contains a link pointing outside of it: {member.name}.")


def _write_file(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path) -> None:
    source = tar.extractfile(member)
    if source is None:
        raise Invalid(f"The archive entry {member.name} cannot be read.")
    _clear(dest)
    with source, dest.open("wb") as out:
        shutil.copyfileobj(source, out, 1024 * 1024)
    dest.chmod((member.mode & MODE_MASK) | 0o600)
    os.utime(dest, (member.mtime, member.mtime))


def _clear(dest: Path) -> None:
    """Remove what a later entry of the same name replaces (never follows a symlink)."""
    if dest.is_symlink() or dest.is_file():
        dest.unlink()
    elif dest.is_dir():
        raise Invalid(f"The archive has a file where it already has a directory: {dest.name}.")
