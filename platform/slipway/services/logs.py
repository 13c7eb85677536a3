"""App logs: every instance's ``/mnt/log/app.log``, read on the host from the instance volumes.

supervisord writes all of a process's output to ``log/app.log`` and rotates it by size
(``stdout_logfile_maxbytes``, a few backups ``app.log.1`` ...). Lines carry the instance they
came from (``web.1 | ...``). When a deploy or a scale-down drains an instance, its ``log/`` is
copied under the data dir first, so the previous release's logs stay readable (marked old) for
``old_logs_retention`` seconds.

The volumes belong to the app's user, so files there are opened beneath the volume with no
symbolic link followed on the way (:mod:`slipway.beneath`), and only regular files are read
(never a FIFO or a device planted in their place): an app that makes ``log`` or ``app.log`` a
link to a host file shows no log, never the file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway import beneath
from slipway.config import Settings
from slipway.models import App, Instance
from slipway.models.instance import CRASHED, DRAINING, LIVE, STARTING, STOPPED
from slipway.volumes.base import VolumeProvider

logger = logging.getLogger(__name__)

LOG_DIR = "log"
LOG_NAME = "app.log"
BACKUPS = 3  # layout.render_supervisor_conf: stdout_logfile_backups
MAX_TAIL = 10_000
TAIL_SCAN_BYTES = 8 * 1024**2  # per file: a tail never reads more than this backwards
READ_CHUNK = 256 * 1024  # per file and poll while following
MAX_PARTIAL = 64 * 1024  # a "line" longer than this is sent in pieces
ARCHIVE_CAP = 64 * 1024**2  # per instance: what is kept of a replaced instance's logs
LOGGED_STATES = (STARTING, LIVE, CRASHED, STOPPED, DRAINING)
PREFIX_SEPARATOR = " | "


@dataclass(frozen=True)
class LogSource:
    """One instance's log directory: ``<root>/log/app.log`` and its rotated backups."""

    label: str  # "web.1", or "web.1 (old v3)" for a replaced instance
    root: Path
    old: bool = False


SourceLister = Callable[[], list[LogSource]]


def prefixed(label: str, line: str) -> str:
    return f"{label}{PREFIX_SEPARATOR}{line}"


# ----------------------------------------------------------------------------- safe reading


def open_log(root: Path, name: str = LOG_NAME) -> int | None:
    """A read-only descriptor of ``<root>/log/<name>``, or None when it is not a regular file."""
    try:
        with beneath.opened(beneath.open_root(root)) as root_fd:
            return beneath.open_regular(root_fd, f"{LOG_DIR}/{name}")
    except OSError:
        return None


def tail_bytes(fd: int, end: int, lines: int) -> bytes:
    """The bytes of the last ``lines`` complete lines before ``end`` (scanning backwards)."""
    start, data = end, b""
    while start > 0 and data.count(b"\n") <= lines and end - start < TAIL_SCAN_BYTES:
        step = min(64 * 1024, start)
        start -= step
        data = os.pread(fd, step, start) + data
    parts = data.split(b"\n")
    if start > 0:
        parts = parts[1:]  # the first piece may be the end of an earlier line
    if parts and parts[-1] == b"":
        parts = parts[:-1]
    return b"\n".join(parts[-lines:]) if lines else b""


def _decode(data: bytes) -> list[str]:
    return data.decode("utf-8", errors="replace").splitlines() if data else []


@dataclass
class Position:
    """Where following a log file goes on: the file (by inode) and the offset read up to."""

    inode: int
    offset: int
    partial: bytes = b""


def read_tail(source: LogSource, lines: int) -> tuple[list[str], Position | None]:
    """The last ``lines`` lines of a source (backups included when needed) and where they end."""
    fd = open_log(source.root)
    if fd is None:
        return [], None
    try:
        info = os.fstat(fd)
        found = _decode(tail_bytes(fd, info.st_size, lines))
        position = Position(info.st_ino, info.st_size)
    finally:
        os.close(fd)
    for backup in range(1, BACKUPS + 1):
        if len(found) >= lines:
            break
        found = _tail_of(source.root, f"{LOG_NAME}.{backup}", lines - len(found)) + found
    return found[-lines:] if lines else [], position


def _tail_of(root: Path, name: str, lines: int) -> list[str]:
    fd = open_log(root, name)
    if fd is None:
        return []
    try:
        return _decode(tail_bytes(fd, os.fstat(fd).st_size, lines))
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- sources


def current_sources(session: Session, volumes: VolumeProvider, app: App) -> list[LogSource]:
    """One source per instance of the app that has a volume."""
    query = select(Instance).where(Instance.app_id == app.id, Instance.state.in_(LOGGED_STATES))
    sources = []
    for instance in session.scalars(query.order_by(Instance.process_type, Instance.index)):
        volume = volumes.get(instance.volume_name)
        if volume is not None:
            sources.append(LogSource(f"{instance.process_type}.{instance.index}", volume.path))
    return sources


def app_key(app: App) -> str:
    """The archive folder of an app; a later app of the same name never sees these logs."""
    return f"{app.name}-{app.id}-{int(app.created_at.timestamp())}"


def old_sources(settings: Settings, app: App, now: float | None = None) -> list[LogSource]:
    """The kept logs of the app's replaced instances, oldest first (expired ones pruned)."""
    prune_old_logs(settings, now)
    folder = settings.old_logs_dir / app_key(app)
    try:
        names = sorted(p.name for p in folder.iterdir() if p.is_dir())
    except OSError:
        return []
    sources = []
    for name in names:
        parts = name.split("-")  # "<unix time>-<type>.<index>-v<version>-<instance id>"
        if len(parts) == 4:
            sources.append(LogSource(f"{parts[1]} (old {parts[2]})", folder / name, old=True))
    return sources


def keep_logs(settings: Settings, volumes: VolumeProvider, instance: Instance) -> Path | None:
    """Copy a retiring instance's logs under the data dir; never raises (logging is best effort)."""
    try:
        return _copy_logs(settings, volumes, instance)
    except Exception as exc:
        logger.warning("could not keep the logs of %s: %s", instance.container_name, exc)
        return None


def _copy_logs(settings: Settings, volumes: VolumeProvider, instance: Instance) -> Path | None:
    volume = volumes.get(instance.volume_name)
    if volume is None:
        return None
    label = f"{instance.process_type}.{instance.index}"
    name = f"{int(time.time())}-{label}-v{instance.release.version}-{instance.id}"
    target = settings.old_logs_dir / app_key(instance.app) / name / LOG_DIR
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    budget = ARCHIVE_CAP
    for file_name in [LOG_NAME, *(f"{LOG_NAME}.{n}" for n in range(1, BACKUPS + 1))]:
        budget -= _copy_one(volume.path, file_name, target / file_name, budget)
    prune_old_logs(settings)
    return target.parent


def _copy_one(root: Path, name: str, target: Path, budget: int) -> int:
    """Copy up to ``budget`` bytes (the end of the file); the bytes copied."""
    fd = open_log(root, name)
    if fd is None or budget <= 0:
        if fd is not None:
            os.close(fd)
        return 0
    with os.fdopen(fd, "rb") as source, target.open("wb") as copy:
        size = os.fstat(source.fileno()).st_size
        source.seek(max(0, size - budget))
        shutil.copyfileobj(source, copy)
        return copy.tell()


def prune_old_logs(settings: Settings, now: float | None = None) -> list[Path]:
    """Delete kept logs older than the retention; the folders deleted."""
    cutoff = (time.time() if now is None else now) - settings.old_logs_retention
    removed = []
    with contextlib.suppress(OSError):
        for app_folder in settings.old_logs_dir.iterdir():
            for kept in list(app_folder.iterdir()):
                stamp = kept.name.split("-", 1)[0]
                if stamp.isdigit() and int(stamp) < cutoff:
                    shutil.rmtree(kept, ignore_errors=True)
                    removed.append(kept)
            with contextlib.suppress(OSError):
                app_folder.rmdir()  # only when empty
    return removed


# ----------------------------------------------------------------------------- tail and follow


def tail(sources: list[LogSource], lines: int) -> list[str]:
    """The last ``lines`` lines of each source, prefixed; old sources (replaced) first."""
    return [line for _, _, found in tail_with_positions(sources, lines) for line in found]


def tail_with_positions(
    sources: list[LogSource], lines: int
) -> list[tuple[LogSource, Position | None, list[str]]]:
    """Per source (old ones first): where its log ends, and its last lines prefixed."""
    lines = max(0, min(lines, MAX_TAIL))
    result = []
    for source in sorted(sources, key=lambda s: not s.old):
        found, position = read_tail(source, lines)
        result.append((source, position, [prefixed(source.label, line) for line in found]))
    return result


@dataclass
class Follower:
    """Reads what was appended to each source since the last poll, across rotations."""

    positions: dict[Path, Position] = field(default_factory=dict)
    labels: dict[Path, str] = field(default_factory=dict)

    def watch(self, source: LogSource, position: Position | None) -> None:
        """Follow ``source`` from ``position`` (None: from the start of its log)."""
        self.labels[source.root] = source.label
        if position is not None:
            self.positions[source.root] = position

    def forget_missing(self, roots: set[Path]) -> None:
        for root in set(self.labels) - roots:
            self.labels.pop(root, None)
            self.positions.pop(root, None)

    def poll(self) -> list[str]:
        """The complete new lines of every source, prefixed."""
        out: list[str] = []
        for root, label in list(self.labels.items()):
            out += [prefixed(label, line) for line in self._read_new(root)]
        return out

    def _read_new(self, root: Path) -> list[str]:
        fd = open_log(root)
        if fd is None:
            return []
        try:
            info = os.fstat(fd)
            position = self.positions.get(root)
            lines: list[str] = []
            if position is None or position.inode != info.st_ino or info.st_size < position.offset:
                # Rotated (or truncated): finish the old file, then read the new one from 0.
                if position is not None:
                    lines += self._finish_rotated(root, position)
                position = Position(info.st_ino, 0)
                self.positions[root] = position
            return lines + _advance(fd, position)
        finally:
            os.close(fd)

    def _finish_rotated(self, root: Path, position: Position) -> list[str]:
        fd = open_log(root, f"{LOG_NAME}.1")
        if fd is None:
            return []
        try:
            if os.fstat(fd).st_ino != position.inode:
                return []
            lines = _advance(fd, position)
            if position.partial:
                lines.append(position.partial.decode("utf-8", errors="replace"))
            return lines
        finally:
            os.close(fd)


def _advance(fd: int, position: Position) -> list[str]:
    data = os.pread(fd, READ_CHUNK, position.offset)
    position.offset += len(data)
    pending = position.partial + data
    *complete, rest = pending.split(b"\n")
    if len(rest) > MAX_PARTIAL:
        complete.append(rest)
        rest = b""
    position.partial = rest
    return [c.decode("utf-8", errors="replace").rstrip("\r") for c in complete]


def follow(
    list_sources: SourceLister,
    lines: int,
    limit: float,
    poll_interval: float = 0.5,
    heartbeat: float = 10.0,
    relist_every: float = 5.0,
) -> Iterator[str]:
    """Yield the tail, then new lines as they are written, for ``limit`` seconds at most.

    An empty string is yielded when nothing was written for ``heartbeat`` seconds, so the
    caller writes something and notices a client that went away. Instances that appear later
    (a deploy, a scale-up) are picked up from the start of their log.
    """
    follower = Follower()
    for source, position, found in tail_with_positions(list_sources(), lines):
        yield from found
        if not source.old:
            follower.watch(source, position)
    deadline = time.monotonic() + limit
    quiet_since = relisted = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(poll_interval)
        if time.monotonic() - relisted >= relist_every:
            _relist(follower, list_sources())
            relisted = time.monotonic()
        new = follower.poll()
        yield from new
        if new:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= heartbeat:
            quiet_since = time.monotonic()
            yield ""


def _relist(follower: Follower, sources: list[LogSource]) -> None:
    current = [s for s in sources if not s.old]
    for source in current:
        if source.root not in follower.labels:
            follower.watch(source, None)
    follower.forget_missing({s.root for s in current})
