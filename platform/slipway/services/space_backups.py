"""Backups of spaces: one self-checking file, made and unpacked as mop, never as root.

The format (version 1) is a valid zstd file, so ``zstd -dc BACKUP | tar -t`` lists it:

1. a zstd *skippable frame* (magic ``0x184D2A50``, then the payload's length as a little-endian
   u32, then the payload) holding the JSON header ``{"format": "slipway-space-backup",
   "version": 1, "space": NAME, "size": CAP_IN_BYTES, "created_at": ISO-8601}``;
2. the zstd-compressed tar of the space's tree (GNU tar, ``--sort=name``, every entry mop's);
3. a trailing skippable frame (magic ``0x184D2A51``, length 64) holding the SHA-256, in hex, of
   every byte before it.

zstd skips skippable frames, so the tar comes out as it went in. A restore checks the header,
the trailer, the checksum and the compressed data (``zstd -t``) before it creates anything, then
unpacks into a *new* space; it never touches a space that exists.

Root never reads the tree: GNU tar runs as mop inside it (:func:`layout.inside_as`), reading a
fresh checkpoint of the space (a read-only point in time) unless the provider copies to make one,
and root only handles the compressed stream and the backup files it writes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import struct
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway import beneath
from slipway.adapters import Adapters
from slipway.config import Settings
from slipway.models import User
from slipway.models.event import SPACE_BACKED_UP, SPACE_RESTORED
from slipway.models.space import CREATING, READY, Space, SpaceBackup
from slipway.services import layout, spaces
from slipway.services.archives import copy_limited, human_size, remove_quietly
from slipway.services.errors import Conflict, Invalid, NotFound, SlipwayError, TooLarge
from slipway.volumes.spaces import SpaceError, SpaceProvider

logger = logging.getLogger(__name__)

FORMAT = "slipway-space-backup"
VERSION = 1
HEADER_MAGIC = 0x184D2A50
TRAILER_MAGIC = 0x184D2A51
FRAME_HEAD = struct.Struct("<II")  # magic, payload length
DIGEST_LENGTH = 64  # sha256 in hex
TRAILER_LENGTH = FRAME_HEAD.size + DIGEST_LENGTH
MAX_HEADER = 64 * 1024
SUFFIX = ".backup.tar.zst"
COMPRESSOR = "zstd -T0 -q"
CHUNK = 256 * 1024
TAR_CHANGED = 1  # GNU tar: some files changed while read (a live tree); the archive is usable
CHECK_TIMEOUT = 3600  # seconds for zstd -t or tar -x of one backup
INCOMING = ".incoming"  # uploads being checked, under backups_dir
UPLOAD_KEPT_AT_MOST = 86400  # seconds; an upload file older than this belongs to no restore


class BadBackup(Invalid):
    """The file is not a backup, or not a whole and intact one; nothing was created."""


@dataclass(frozen=True)
class BackupHeader:
    space: str
    size: int
    created_at: str


# ----------------------------------------------------------------------------- the format


def skippable_frame(magic: int, payload: bytes) -> bytes:
    return FRAME_HEAD.pack(magic, len(payload)) + payload


def header_frame(space: str, size: int, created_at: datetime) -> bytes:
    header = {
        "format": FORMAT,
        "version": VERSION,
        "space": space,
        "size": size,
        "created_at": created_at.astimezone(UTC).isoformat(timespec="seconds"),
    }
    return skippable_frame(HEADER_MAGIC, json.dumps(header, sort_keys=True).encode())


def trailer_frame(sha256_hex: str) -> bytes:
    return skippable_frame(TRAILER_MAGIC, sha256_hex.encode("ascii"))


def read_header(source: IO[bytes]) -> BackupHeader:
    """The header at the start of ``source``; :class:`BadBackup` when it is not a backup's."""
    not_backup = "This file is not a Slipway space backup (it has no backup header)."
    head = source.read(FRAME_HEAD.size)
    if len(head) < FRAME_HEAD.size:
        raise BadBackup(not_backup)
    magic, length = FRAME_HEAD.unpack(head)
    if magic != HEADER_MAGIC or length > MAX_HEADER:
        raise BadBackup(not_backup)
    payload = source.read(length)
    if len(payload) < length:
        raise BadBackup("The backup is incomplete: it ends inside its header.")
    try:
        header = json.loads(payload)
    except ValueError:
        raise BadBackup(not_backup) from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise BadBackup(not_backup)
    if header.get("version") != VERSION:
        raise BadBackup(
            f"This backup has format version {header.get('version')!r}; this platform reads "
            f"version {VERSION} only."
        )
    space, size, created_at = header.get("space"), header.get("size"), header.get("created_at")
    if not isinstance(space, str) or not isinstance(size, int) or size <= 0:
        raise BadBackup("The backup's header is damaged: it lacks the space's name or size.")
    return BackupHeader(space=space, size=size, created_at=str(created_at or ""))


def read_trailer(source: IO[bytes], length: int) -> str:
    """The SHA-256 (hex) the trailer of a file of ``length`` bytes records."""
    cut_short = "The backup is incomplete: its checksum trailer is missing (it was cut short)."
    if length < TRAILER_LENGTH:
        raise BadBackup(cut_short)
    source.seek(length - TRAILER_LENGTH)
    magic, size = FRAME_HEAD.unpack(source.read(FRAME_HEAD.size))
    digest = source.read(DIGEST_LENGTH)
    if magic != TRAILER_MAGIC or size != DIGEST_LENGTH:
        raise BadBackup(cut_short)
    try:
        text = digest.decode("ascii")
        int(text, 16)
    except ValueError:
        raise BadBackup(cut_short) from None
    return text.lower()


def check_backup_file(path: Path) -> BackupHeader:
    """Check a whole backup file: header, trailer, checksum, then its compressed data.

    Raises :class:`BadBackup` with one sentence saying what is wrong.
    """
    length = path.stat().st_size
    with path.open("rb") as source:
        header = read_header(source)
        recorded = read_trailer(source, length)
        source.seek(0)
        digest = hashlib.sha256()
        remaining = length - TRAILER_LENGTH
        while remaining > 0:
            chunk = source.read(min(CHUNK, remaining))
            if not chunk:
                break
            digest.update(chunk)
            remaining -= len(chunk)
        if digest.hexdigest() != recorded:
            raise BadBackup(
                "The backup is damaged: its SHA-256 checksum does not match its contents."
            )
    # A fresh descriptor: a buffered seek(0) may leave the one above at the end of the file.
    with path.open("rb") as source:
        _test_compressed(source)
    return header


def _test_compressed(source: IO[bytes]) -> None:
    """``zstd -t`` of the whole file, as mop (it parses what a user sent)."""
    with beneath.opened(beneath.open_root("/")) as fd:
        done = subprocess.run(
            ["zstd", "-t", "-q", "-"],
            stdin=source,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=CHECK_TIMEOUT,
            check=False,
            **layout.inside_as(fd, layout.app_owner()),
        )
    if done.returncode != 0:
        reason = " ".join(done.stderr.decode(errors="replace").split())[-200:]
        raise BadBackup(f"The backup is damaged: its compressed data does not check ({reason}).")


# ----------------------------------------------------------------------------- making one


def stream_backup(
    provider: SpaceProvider,
    space: Space,
    done: Callable[[int, str], None] | None = None,
    now: datetime | None = None,
) -> Iterator[bytes]:
    """The backup of ``space`` as chunks: header, compressed tar, trailer.

    The space is read from a fresh checkpoint (deleted afterwards) unless the provider copies to
    make one; then from the live tree. ``done(bytes, sha256)`` is called once the last chunk is
    out. The space's name, key and size are read now, so the caller's session may close.
    """
    name, key, size = space.name, space.key, space.size
    header = header_frame(name, size, now or datetime.now(UTC))
    return _stream(provider, name, key, header, done)


def _stream(
    provider: SpaceProvider,
    name: str,
    key: str,
    header: bytes,
    done: Callable[[int, str], None] | None,
) -> Iterator[bytes]:
    digest = hashlib.sha256(header)
    total = len(header)
    with _readable_tree(provider, name, key) as tree:
        yield header  # once the checkpoint is made: a caller may take it first to catch errors
        for chunk in _tar_stream(tree, name):
            digest.update(chunk)
            total += len(chunk)
            yield chunk
    trailer = trailer_frame(digest.hexdigest())
    yield trailer
    if done is not None:
        done(total + len(trailer), digest.hexdigest())


@contextlib.contextmanager
def _readable_tree(provider: SpaceProvider, name: str, key: str) -> Iterator[Path]:
    """A tree to read: a fresh checkpoint's, or the live one when checkpoints copy."""
    checkpoint = None if provider.copies else f"backup-{uuid.uuid4().hex[:12]}"
    try:
        if checkpoint is None:
            tree = provider.tree(key)
        else:
            provider.checkpoint(key, checkpoint)
            tree = provider.checkpoint_tree(key, checkpoint)
    except SpaceError as exc:
        if checkpoint is not None:
            with contextlib.suppress(SpaceError):
                provider.delete_checkpoint(key, checkpoint)
        reason = f"The space {name} could not be read for a backup: {exc}."
        raise spaces.SpaceFailed(reason) from exc
    try:
        yield tree
    finally:
        if checkpoint is not None:
            provider.delete_checkpoint(key, checkpoint)


def _tar_stream(tree: Path, name: str) -> Iterator[bytes]:
    """GNU tar of ``tree`` as mop, compressed by zstd, read by root only as a stream."""
    args = ["tar", "--create", "--file=-", "--sort=name", "--numeric-owner"]
    args += [f"--owner={layout.MOP_UID}", f"--group={layout.MOP_GID}"]
    args += [f"--use-compress-program={COMPRESSOR}", "."]
    with (
        beneath.opened(beneath.open_root(tree)) as tree_fd,
        tempfile.TemporaryFile() as errors,
    ):
        process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errors,
            **layout.inside_as(tree_fd, layout.app_owner()),
        )
        assert process.stdout is not None
        try:
            while chunk := process.stdout.read(CHUNK):
                yield chunk
            status = process.wait(timeout=CHECK_TIMEOUT)
        finally:
            if process.poll() is None:  # the reader went away (a closed download)
                process.kill()
                process.wait()
            process.stdout.close()
        errors.seek(0)
        reason = " ".join(errors.read().decode(errors="replace").split())[-300:]
    if status == TAR_CHANGED:
        logger.warning("backup of space %s: files changed while read: %s", name, reason)
    elif status != 0:
        raise SlipwayError(f"Could not back up space {name!r}: {reason or f'tar exit {status}'}")


def backup_name(space: str, when: datetime) -> str:
    return f"{space}-{when.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}{SUFFIX}"


def write_backup(
    session: Session,
    adapters: Adapters,
    settings: Settings,
    space: Space,
    scheduled: bool = False,
) -> SpaceBackup:
    """Write a backup of ``space`` to ``backups_dir/<space>/`` and record it (and the event)."""
    now = datetime.now(UTC)
    directory = settings.backups_dir / space.name
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / backup_name(space.name, now)
    if final.exists():  # two in one second
        final = final.with_name(f"{final.name.removesuffix(SUFFIX)}-{uuid.uuid4().hex[:6]}{SUFFIX}")
    tmp = final.with_name(final.name + ".part")
    result: dict[str, object] = {}

    def finished(size: int, sha256: str) -> None:
        result.update(size=size, sha256=sha256)

    try:
        with tmp.open("xb") as out:
            for chunk in stream_backup(adapters.spaces, space, finished, now):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, final)
    finally:
        remove_quietly(tmp)
    backup = SpaceBackup(
        space_id=space.id,
        owner_id=space.owner_id,
        space_name=space.name,
        path=str(final),
        size=int(str(result["size"])),
        sha256=str(result["sha256"]),
        scheduled=scheduled,
        created_at=now,
    )
    session.add(backup)
    session.flush()
    record_backed_up(session, space, backup.size, backup.sha256, scheduled)
    return backup


def record_backed_up(
    session: Session, space: Space, size: int, sha256: str, scheduled: bool = False
) -> None:
    kind = "Scheduled backup" if scheduled else "Backup"
    spaces.record_space_event(
        session,
        space,
        SPACE_BACKED_UP,
        f"{kind} of space {space.name}: {human_size(size)}, sha256 {sha256[:12]}…",
        {"size": size, "sha256": sha256, "scheduled": scheduled},
    )


# ----------------------------------------------------------------------------- restoring


def restore_backup(
    session: Session,
    adapters: Adapters,
    settings: Settings,
    owner: User,
    stream: IO[bytes],
    new_name: str,
    size: int | None = None,
    content_length: int | None = None,
) -> Space:
    """Check an uploaded backup, then unpack it into a new space ``new_name`` (its cap: ``size``,
    else the one the backup recorded). A bad backup creates nothing; one that cannot be
    unpacked (too big for the cap) leaves no space behind."""
    name = spaces.check_space_name(new_name)
    if session.scalar(select(Space.id).where(Space.name == name)) is not None:
        raise Conflict(f"A space named {name!r} already exists; a restore only makes a new space.")
    limit = settings.space_restore_max_size
    if content_length is not None and content_length > limit:
        raise _too_large(limit)
    with _saved_upload(settings, stream, limit) as path:
        header = check_backup_file(path)
        spaces.parse_space_size(header.size, 0)  # a header that says less than a space can be
        origin = f"restored from a backup of {header.space} ({header.created_at})"[:255]
        space = spaces.create_space(session, adapters, owner, name, size or header.size, origin)
        space.state = CREATING  # neither backed up nor attached while half-unpacked
        session.commit()
        try:
            _unpack(path, adapters.spaces.tree(space.key), space)
        except SlipwayError:
            spaces.delete_space(session, adapters, space, force=True)
            session.commit()  # the error answer rolls back, and the space must stay gone
            raise
        space.state = READY
    spaces.record_space_event(
        session,
        space,
        SPACE_RESTORED,
        f"Space {space.name} restored from a backup of {header.space} ({header.created_at})",
        {"from": header.space, "backup_created_at": header.created_at},
    )
    return space


def _too_large(limit: int) -> TooLarge:
    return TooLarge(
        f"The backup is larger than the restore limit of {human_size(limit)} "
        "(SLIPWAY_SPACE_RESTORE_MAX_SIZE)."
    )


@contextlib.contextmanager
def _saved_upload(settings: Settings, stream: IO[bytes], limit: int) -> Iterator[Path]:
    """The upload in a file of its own under ``backups_dir/.incoming``, removed afterwards."""
    directory = settings.backups_dir / INCOMING
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / f"{uuid.uuid4().hex}.part"
    try:
        with path.open("xb") as out:
            try:
                copy_limited(stream, out, limit)
            except TooLarge:
                raise _too_large(limit) from None
        yield path
    finally:
        remove_quietly(path)


def _unpack(backup: Path, tree: Path, space: Space) -> None:
    """GNU tar unpacks the backup as mop inside the new space's tree (zstd skips the frames)."""
    args = ["tar", "--extract", "--file=-", "--zstd", "--no-same-owner", "--preserve-permissions"]
    with (
        beneath.opened(beneath.open_root(tree)) as tree_fd,
        backup.open("rb") as source,
    ):
        done = subprocess.run(
            args,
            stdin=source,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=CHECK_TIMEOUT,
            check=False,
            **layout.inside_as(tree_fd, layout.app_owner()),
        )
    if done.returncode == 0:
        return
    stderr = done.stderr.decode(errors="replace")
    if "No space left on device" in stderr or "Disk quota exceeded" in stderr:
        raise Invalid(
            f"The backup does not fit in a space of {human_size(space.size)}; restore it with "
            "a larger --size (the new space was removed)."
        )
    reason = " ".join(stderr.split())[-300:] or f"tar exit {done.returncode}"
    raise Invalid(f"The backup could not be unpacked ({reason}); the new space was removed.")


# ----------------------------------------------------------------------------- listing


def list_backups(session: Session, user: User, space_name: str) -> list[SpaceBackup]:
    """The kept backups of the space of that name (it may be gone), newest first; those whose
    file was removed from the data directory are left out."""
    query = select(SpaceBackup).where(SpaceBackup.space_name == space_name)
    if not user.is_admin:
        query = query.where(SpaceBackup.owner_id == user.id)
    found = [
        backup
        for backup in session.scalars(query.order_by(SpaceBackup.id.desc()))
        if Path(backup.path).is_file()
    ]
    if not found:
        spaces.get_space(session, user, space_name)  # NotFound when there is no such space
    return found


def get_backup(session: Session, user: User, backup_id: int, settings: Settings) -> SpaceBackup:
    backup = session.get(SpaceBackup, backup_id)
    if backup is None or not (user.is_admin or backup.owner_id == user.id):
        raise NotFound(f"There is no space backup {backup_id}.")
    if not backup_path(backup, settings).is_file():
        raise NotFound(f"Space backup {backup_id}'s file is gone from the data directory.")
    return backup


def backup_path(backup: SpaceBackup, settings: Settings) -> Path:
    """The file of a kept backup; only ever one inside the backups directory."""
    path = Path(backup.path).resolve()
    if settings.backups_dir.resolve() not in path.parents:
        raise NotFound(f"Space backup {backup.id} is not in the backups directory.")
    return path


def delete_backup(session: Session, backup: SpaceBackup, settings: Settings) -> None:
    with contextlib.suppress(NotFound):
        remove_quietly(backup_path(backup, settings))
    session.delete(backup)
    session.flush()


# ----------------------------------------------------------------------------- the schedule


def due_spaces(session: Session, settings: Settings, now: datetime) -> list[Space]:
    """Ready spaces whose last scheduled backup is older than the interval (or missing)."""
    if settings.space_backup_interval <= 0:
        return []
    cutoff = now - timedelta(seconds=settings.space_backup_interval)
    due = []
    for space in session.scalars(select(Space).where(Space.state == READY).order_by(Space.id)):
        last = session.scalar(
            select(SpaceBackup.created_at)
            .where(SpaceBackup.space_id == space.id, SpaceBackup.scheduled.is_(True))
            .order_by(SpaceBackup.id.desc())
            .limit(1)
        )
        if last is None or _aware(last) <= cutoff:
            due.append(space)
    return due


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def prune_scheduled(session: Session, space_id: int, settings: Settings) -> int:
    """Remove scheduled backups of a space past the last ``space_backup_keep``; how many."""
    old = session.scalars(
        select(SpaceBackup)
        .where(SpaceBackup.space_id == space_id, SpaceBackup.scheduled.is_(True))
        .order_by(SpaceBackup.id.desc())
        .offset(max(settings.space_backup_keep, 1))
    ).all()
    for backup in old:
        delete_backup(session, backup, settings)
    return len(old)


def run_scheduled_backups(session: Session, adapters: Adapters, settings: Settings) -> list[str]:
    """Back up every due space (committing after each), keep the last N; the names done.

    One space that fails is logged and skipped; the others still get their backup. The caller
    holds the schedule's lock, so a ``.part`` file found here was left by a run that died.
    """
    remove_leftovers(settings, datetime.now(UTC))
    done = []
    for space in due_spaces(session, settings, datetime.now(UTC)):
        try:
            write_backup(session, adapters, settings, space, scheduled=True)
            prune_scheduled(session, space.id, settings)
            session.commit()
            done.append(space.name)
        except Exception:
            session.rollback()
            logger.exception("scheduled backup of space %s failed", space.name)
    return done


def remove_leftovers(settings: Settings, now: datetime) -> list[Path]:
    """Half-written scheduled backups, and uploads no restore has held for a day; the paths."""
    root = settings.backups_dir
    if not root.is_dir():
        return []
    stale = [path for path in root.glob("*/*.part") if path.parent.name != INCOMING]
    old = (now - timedelta(seconds=UPLOAD_KEPT_AT_MOST)).timestamp()
    stale += [path for path in root.glob(f"{INCOMING}/*.part") if path.stat().st_mtime < old]
    for path in stale:
        remove_quietly(path)
    return stale
