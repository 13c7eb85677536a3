"""Uploaded source archives: copy with a size cap, check every entry, extract safely.

An upload is untrusted. Before anything is written to disk outside the artifact store, every entry
of the ``.tar.gz`` is checked: no absolute paths, no ``..``, no links that point out of the
archive as written, no devices or fifos. Those checks compare text, so they are only early,
friendly errors; the guard is the extraction itself (:mod:`slipway.services.untar`), which goes
through directory descriptors and never follows a link on the host. The Procfile and app.json
are read the same way (:mod:`slipway.beneath`): a link, even one pointing inside the tree, is
refused. A GitHub-style archive (one top-level directory) is unwrapped.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import posixpath
import re
import tarfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from slipway import beneath
from slipway.services.errors import Invalid, TooLarge
from slipway.services.untar import safe_extract

GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 1024 * 1024
PROCESS_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,29}$")
NOT_AN_ARCHIVE = "The upload is not a valid .tar.gz archive."
# The Procfile's `release` command runs once per release (the release phase), never as instances.
RELEASE_TYPE = "release"


@dataclass(frozen=True)
class ArchiveInfo:
    files: int  # regular files in the archive
    unpacked_size: int  # their total size in bytes
    prefix: str | None  # the single top-level directory that extraction strips, if any


# ----------------------------------------------------------------------------- streaming upload


def copy_limited(stream: IO[bytes], out: IO[bytes], limit: int) -> int:
    """Copy ``stream`` to ``out``; raise TooLarge as soon as more than ``limit`` bytes arrive."""
    total = 0
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            return total
        total += len(chunk)
        if total > limit:
            raise TooLarge(f"The upload is larger than the limit of {human_size(limit)}.")
        out.write(chunk)


def human_size(size: int) -> str:
    for unit, factor in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if size >= factor:
            return f"{size / factor:g} {unit}"
    return f"{size} bytes"


# ----------------------------------------------------------------------------- checking


def inspect_archive(path: Path, max_unpacked: int | None = None) -> ArchiveInfo:
    """Check every entry of the archive; raise Invalid (or TooLarge) with one clear sentence."""
    with path.open("rb") as f:
        if f.read(2) != GZIP_MAGIC:
            raise Invalid(NOT_AN_ARCHIVE)
    files = 0
    size = 0
    names: list[str] = []
    with _open(path) as tar:
        for member in _members(tar):
            _check_member(member)
            names.append(member.name)
            if member.isreg():
                files += 1
                size += member.size
                if max_unpacked is not None and size > max_unpacked:
                    raise TooLarge(f"The archive unpacks to more than {human_size(max_unpacked)}.")
    if files == 0:
        raise Invalid("The archive is empty: it contains no files.")
    return ArchiveInfo(files=files, unpacked_size=size, prefix=_single_prefix(names))


@contextmanager
def _open(path: Path) -> Iterator[tarfile.TarFile]:
    try:
        with tarfile.open(path, "r:gz") as tar:
            yield tar
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise Invalid(NOT_AN_ARCHIVE) from exc


def _members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    # Iterating reads the whole stream, so a truncated or corrupt archive fails here.
    try:
        yield from tar
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise Invalid(NOT_AN_ARCHIVE) from exc


def _check_member(member: tarfile.TarInfo) -> None:
    name = member.name
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise Invalid(f"The archive contains an absolute path: {name}.")
    if ".." in name.split("/"):
        raise Invalid(f"The archive contains a path that leaves its directory: {name}.")
    if member.ischr() or member.isblk():
        raise Invalid(f"The archive contains a device file, which is not allowed: {name}.")
    if member.isfifo():
        raise Invalid(f"The archive contains a fifo, which is not allowed: {name}.")
    if member.issym():
        _check_link_target(name, posixpath.join(posixpath.dirname(name), member.linkname), member)
    elif member.islnk():
        _check_link_target(name, member.linkname, member)
    elif not (member.isreg() or member.isdir()):
        raise Invalid(f"The archive contains an entry of an unsupported type: {name}.")


def _check_link_target(name: str, target: str, member: tarfile.TarInfo) -> None:
    normal = posixpath.normpath(target)
    if member.linkname.startswith("/") or normal == ".." or normal.startswith("../"):
        raise Invalid(f"The archive contains a link pointing outside of it: {name}.")


def _single_prefix(names: list[str]) -> str | None:
    """The one top-level directory every entry lives in (GitHub tarballs), or None."""
    tops = {n.strip("/").removeprefix("./").split("/", 1)[0] for n in names}
    tops.discard("")
    tops.discard(".")
    if len(tops) != 1:
        return None
    top = tops.pop()
    nested = any("/" in n.strip("/").removeprefix("./") for n in names)
    return top if nested else None


# ----------------------------------------------------------------------------- extracting


def extract_archive(
    path: Path,
    target: Path,
    max_unpacked: int | None = None,
    owner: tuple[int, int] | None = None,
) -> ArchiveInfo:
    """Check, then extract the archive into ``target`` (unwrapping a single top directory).

    ``owner`` (uid, gid) owns what is extracted. :class:`~slipway.services.untar.NoSpace` when
    ``target``'s filesystem fills up: a write error is never reported as a bad archive.
    """
    info = inspect_archive(path, max_unpacked)
    target.mkdir(parents=True, exist_ok=True)

    prefix = info.prefix

    def strip(name: str) -> str:
        return name if prefix is None else _strip(name, prefix)

    try:
        tar = tarfile.open(path, "r:gz")
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise Invalid(NOT_AN_ARCHIVE) from exc
    # Not _open: an OSError here is the target's (a full volume), not a damaged archive.
    with tar:
        try:
            safe_extract(tar, target, rename=strip, owner=owner)
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise Invalid(NOT_AN_ARCHIVE) from exc
    return info


def _strip(name: str, prefix: str) -> str:
    parts = name.strip("/").removeprefix("./").split("/", 1)
    return parts[1] if len(parts) == 2 and parts[0] == prefix else ""


# ----------------------------------------------------------------------------- app metadata


MAX_METADATA_BYTES = 1024 * 1024  # Procfile, app.json


def read_procfile(source: Path) -> dict[str, str]:
    """Process types from ``Procfile`` (``name: command`` per line); empty without one."""
    data = read_source_file(source, "Procfile")
    if data is None:
        return {}
    types: dict[str, str] = {}
    for number, raw in enumerate(data.decode(errors="replace").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, command = line.partition(":")
        name, command = name.strip(), command.strip()
        if not sep or not PROCESS_TYPE.match(name) or not command:
            raise Invalid(f"Procfile line {number} is not 'name: command': {line[:80]}")
        if name in types:
            raise Invalid(f"Procfile line {number} names the process type {name!r} again.")
        types[name] = command
    return types


def read_app_json(source: Path) -> dict[str, Any]:
    """The parsed ``app.json`` if present (an object), else an empty dict."""
    raw = read_source_file(source, "app.json")
    if raw is None:
        return {}
    try:
        data = json.loads(raw.decode())
    except json.JSONDecodeError as exc:
        raise Invalid(f"app.json is not valid JSON (line {exc.lineno}: {exc.msg}).") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid("app.json is not valid JSON.") from exc
    if not isinstance(data, dict):
        raise Invalid("app.json must contain a JSON object.")
    return data


def read_source_file(source: Path, name: str) -> bytes | None:
    """The bytes of ``name`` at the top of an unpacked source, None when it has none.

    Read beneath ``source`` with no link followed: a link (wherever it points), a directory or
    a file over 1 MB is refused, and the message says only that, never what it leads to.
    """
    try:
        root = beneath.open_root(source)
    except FileNotFoundError:
        return None
    try:
        return beneath.read_small(root, name, MAX_METADATA_BYTES)
    except FileNotFoundError:
        return None
    except beneath.Refused as exc:
        if exc.errno == errno.EFBIG:
            raise Invalid(f"The {name} is larger than {human_size(MAX_METADATA_BYTES)}.") from exc
        raise Invalid(f"The {name} must be a regular file, not a link or a directory.") from exc
    finally:
        os.close(root)


def remove_quietly(path: Path) -> None:
    """Delete a file if it is there; used to drop rejected uploads."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
