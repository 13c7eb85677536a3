"""File access that the kernel keeps beneath a root directory: for trees users and apps control.

Root on the host reads and writes inside trees that hostile users and apps control (an unpacked
upload, an instance volume, a build's output). Checking a path as text and then opening it is
not enough: a symbolic link (or a chain of them, or one swapped in between the check and the
use) leads the open anywhere on the host. Here every path is resolved by the kernel relative to
a directory descriptor, with ``openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)``: no ``..`` above the root, no symbolic link at all,
no other filesystem. Where the kernel has no ``openat2`` (before 5.6, or a seccomp filter that
answers ENOSYS) the same rules are kept by opening one component at a time with ``O_NOFOLLOW``
relative to its parent's descriptor.

Paths are relative (``"notifications/1-web-oom.json"``); ``""`` and ``"."`` name the root.
A refused path raises :class:`Refused` (an ``OSError``), never follows anything.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SYS_OPENAT2 = 437  # the same number on every architecture Linux added it to
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV
OPENAT2_RETRIES = 16  # EAGAIN: a rename raced the lookup; the kernel asks to try again

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # NONBLOCK: a fifo
NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class Refused(OSError):
    """The path leaves the root, goes through a link, or names something of the wrong kind."""


class OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_have_openat2: bool | None = None  # None: not tried yet


def parts_of(path: str) -> list[str]:
    """The components of a relative path; :class:`Refused` for an absolute one or ``..``."""
    if path.startswith("/"):
        raise Refused(errno.EXDEV, "an absolute path", path)
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise Refused(errno.EXDEV, "a path that goes up", path)
    return parts


def open_root(path: Path | str) -> int:
    """A descriptor of a root the platform itself chose (a volume's mount point, a data dir)."""
    return os.open(path, DIR_FLAGS)


def open_beneath(root_fd: int, path: str, flags: int, mode: int = 0) -> int:
    """``openat(root_fd, path, flags)`` resolved beneath the root with no link followed."""
    flags |= os.O_NOFOLLOW | os.O_CLOEXEC
    parts = parts_of(path)
    global _have_openat2
    if _have_openat2 is not False:
        try:
            fd = _openat2(root_fd, "/".join(parts) or ".", flags, mode)
            _have_openat2 = True
            return fd
        except OSError as exc:
            if exc.errno != errno.ENOSYS:
                raise _refusal(exc, path) from None
            _have_openat2 = False
    return _walk(root_fd, parts, flags, mode, path)


def _openat2(root_fd: int, path: str, flags: int, mode: int) -> int:
    how = OpenHow(flags, mode if flags & os.O_CREAT else 0, RESOLVE)
    raw = os.fsencode(path)
    for _ in range(OPENAT2_RETRIES):
        fd = _syscall(SYS_OPENAT2, root_fd, raw, ctypes.byref(how), ctypes.sizeof(how))
        if fd >= 0:
            return int(fd)
        code = ctypes.get_errno()
        if code != errno.EAGAIN:
            raise OSError(code, os.strerror(code), path)
    raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN), path)


def _walk(root_fd: int, parts: list[str], flags: int, mode: int, shown: str) -> int:
    """The same lookup without openat2: one component at a time, none of them a link."""
    device = os.fstat(root_fd).st_dev
    current = os.dup(root_fd)
    try:
        for part in parts[:-1]:
            following = _open_part(part, DIR_FLAGS, 0, current, shown)
            os.close(current)
            current = following
            if os.fstat(current).st_dev != device:
                raise Refused(errno.EXDEV, "a path onto another filesystem", shown)
        if not parts:
            return _open_part(".", flags, mode, current, shown)
        fd = _open_part(parts[-1], flags, mode, current, shown)
        if os.fstat(fd).st_dev != device:
            os.close(fd)
            raise Refused(errno.EXDEV, "a path onto another filesystem", shown)
        return fd
    finally:
        os.close(current)


def _open_part(part: str, flags: int, mode: int, dir_fd: int, shown: str) -> int:
    try:
        return os.open(part, flags, mode, dir_fd=dir_fd)
    except OSError as exc:
        raise _refusal(exc, shown) from None


def _refusal(exc: OSError, path: str) -> OSError:
    """ELOOP (a link) and EXDEV (out of the root) become :class:`Refused`; others stay."""
    if exc.errno in (errno.ELOOP, errno.EXDEV):
        return Refused(exc.errno, "a path through a link or out of its tree", path)
    if exc.errno == errno.ENOTDIR:
        return Refused(exc.errno, "a path through something that is not a directory", path)
    return type(exc)(exc.errno, exc.strerror, path)


# ----------------------------------------------------------------------------- helpers


@contextmanager
def opened(fd: int) -> Iterator[int]:
    """Close ``fd`` at the end of the block."""
    try:
        yield fd
    finally:
        os.close(fd)


def open_dir(root_fd: int, path: str) -> int:
    """A directory beneath the root (read-only descriptor)."""
    return open_beneath(root_fd, path, DIR_FLAGS)


def open_regular(root_fd: int, path: str) -> int:
    """A regular file beneath the root, open for reading; :class:`Refused` for anything else."""
    fd = open_beneath(root_fd, path, READ_FLAGS)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise Refused(errno.EINVAL, "not a regular file", path)
    return fd


def read_small(root_fd: int, path: str, limit: int) -> bytes:
    """The bytes of a regular file beneath the root; :class:`Refused` when over ``limit``."""
    with opened(open_regular(root_fd, path)) as fd:
        if os.fstat(fd).st_size > limit:
            raise Refused(errno.EFBIG, "a file larger than allowed", path)
        data = b""
        while len(data) <= limit:
            chunk = os.read(fd, limit + 1 - len(data))
            if not chunk:
                return data
            data += chunk
        raise Refused(errno.EFBIG, "a file larger than allowed", path)


def is_regular(root_fd: int, path: str) -> bool:
    """Whether ``path`` is a regular file beneath the root (a link never is); opens nothing."""
    try:
        parts = parts_of(path)
        if not parts:
            return False
        with opened(open_dir(root_fd, "/".join(parts[:-1]))) as parent:
            found = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
    except OSError:
        return False
    return stat.S_ISREG(found.st_mode)


def list_dir(root_fd: int, path: str) -> list[str]:
    """The names in a directory beneath the root."""
    with opened(open_dir(root_fd, path)) as fd:
        return os.listdir(fd)


def unlink(root_fd: int, path: str) -> None:
    """Remove a file (or link) beneath the root; its parent is opened without following links."""
    parts = parts_of(path)
    if not parts:
        raise Refused(errno.EISDIR, "the root itself", path)
    with opened(open_dir(root_fd, "/".join(parts[:-1]))) as parent:
        os.unlink(parts[-1], dir_fd=parent)


def make_dirs(
    root_fd: int, path: str, mode: int = 0o755, owner: tuple[int, int] | None = None
) -> int:
    """Open (making what is missing) the directory at ``path``; its descriptor.

    Directories made here get ``mode`` and, when given, ``owner`` (uid, gid) before anyone else
    can see them filled; existing ones are only entered, never through a link.
    """
    current = os.dup(root_fd)
    try:
        for part in parts_of(path):
            try:
                os.mkdir(part, 0o700, dir_fd=current)
                made = True
            except FileExistsError:
                made = False
            following = _open_part(part, DIR_FLAGS, 0, current, path)
            os.close(current)
            current = following
            if made:
                if owner is not None:
                    os.fchown(current, *owner)
                os.fchmod(current, mode)
        return current
    except BaseException:
        os.close(current)
        raise


def create_file(
    dir_fd: int, name: str, mode: int = 0o600, owner: tuple[int, int] | None = None
) -> int:
    """A new file ``name`` in ``dir_fd`` (never an existing one, never through a link)."""
    if "/" in name or name in ("", ".", ".."):
        raise Refused(errno.EINVAL, "not a plain file name", name)
    fd = os.open(name, NEW_FILE_FLAGS, 0o600, dir_fd=dir_fd)
    try:
        if owner is not None:
            os.fchown(fd, *owner)
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_new(
    root_fd: int, path: str, data: bytes, mode: int = 0o644, owner: tuple[int, int] | None = None
) -> None:
    """Write a new file beneath the root; refused if anything is already there."""
    parts = parts_of(path)
    if not parts:
        raise Refused(errno.EISDIR, "the root itself", path)
    with opened(open_dir(root_fd, "/".join(parts[:-1]))) as parent:
        with os.fdopen(create_file(parent, parts[-1], mode, owner), "wb") as out:
            out.write(data)
