"""The collector: turns Navi's notification files and Docker's events into ``Event`` rows.

Navi writes ``<time_ns>-<process>-<type>.json`` into each instance's ``notifications/``. The
collector reads them (the file name is the dedupe key, so a file read twice is stored once),
records the events, and removes the files only after the transaction commits. A container
that dies without the platform stopping it (supervisord itself gone) is seen in Docker's
``die`` event, an ``oom`` just before it making it an OOM. An OOM kill of any other process
(a worker, a child) is seen in the container's memory cgroup (:mod:`slipway.services.oomkills`).
Too many crashes of one instance in a window mark it ``crashed`` and raise one ``crash_loop``.

The files are written by the app's own user, so they are read defensively, beneath the
instance volume with no link followed (:mod:`slipway.beneath`): an app that makes
``notifications`` (or a file in it) a link gets nothing read and nothing removed. Regular files
only, size-capped, and only the crash details are taken from them (app and instance come from
the database, never from the file).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from slipway import beneath
from slipway.config import Settings
from slipway.models import App, Event, Instance
from slipway.models import event as kinds
from slipway.models import instance as instance_states
from slipway.runtime.base import LABEL_INSTANCE, ContainerEvent, ContainerRuntime
from slipway.runtime.kernel import OomLog
from slipway.services import webhooks
from slipway.services.events import record_event
from slipway.services.oomkills import OomWatch, oom_key
from slipway.tasks.dispatch import enqueue_after_commit
from slipway.volumes.base import VolumeProvider

log = logging.getLogger(__name__)

NOTIFICATIONS_DIR = "notifications"
MAX_NOTIFICATION_BYTES = 256 * 1024
MAX_FILES_PER_PASS = 200  # per instance, so one noisy app cannot stall the others
WATCHED_STATES = (
    instance_states.STARTING,
    instance_states.LIVE,
    instance_states.DRAINING,
    instance_states.CRASHED,
)
# Containers the platform stops are draining or stopped first: their death is not a crash.
UNEXPECTED_DEATH_STATES = (instance_states.STARTING, instance_states.LIVE, instance_states.CRASHED)
OOM_MEMORY = 60.0  # seconds an ``oom`` from Docker colours the same container's ``die``
KEPT_NOTE_FIELDS = (
    "process",
    "state",
    "from_state",
    "exit_status",
    "signal",
    "pid",
    "time",
    "time_iso",
    "tries",
    "oom_kills",
    "log_tail",
)


@dataclass(frozen=True)
class NoteFile:
    """One notification file: a name in ``notifications/`` of an instance volume."""

    volume: Path  # the volume's root: a mount point the platform made
    name: str

    @property
    def relative(self) -> str:
        return f"{NOTIFICATIONS_DIR}/{self.name}"


@dataclass
class Collected:
    events: list[Event] = field(default_factory=list)
    files: list[NoteFile] = field(default_factory=list)  # remove these once the commit is done


# ---------------------------------------------------------------------------------------------
# Notification files
# ---------------------------------------------------------------------------------------------


def read_note(note_file: NoteFile) -> dict[str, Any] | None:
    """A notification file's JSON object, or None when it is not a sane one (or not a file)."""
    try:
        with beneath.opened(beneath.open_root(note_file.volume)) as root:
            data = beneath.read_small(root, note_file.relative, MAX_NOTIFICATION_BYTES)
        note = json.loads(data)
    except (OSError, ValueError):
        return None
    return note if isinstance(note, dict) else None


def note_message(note: dict[str, Any], instance: Instance) -> str:
    what = "ran out of memory" if note.get("type") == kinds.OOM else "crashed"
    how = ""
    if "signal" in note:
        how = f" ({note['signal']})"
    elif "exit_status" in note:
        how = f" (exit status {note['exit_status']})"
    process = str(note.get("process") or instance.process_type)
    return f"Process {process} of {instance.container_name} {what}{how}."


def pending_files(volume_path: Path) -> list[NoteFile]:
    """The notification files of one volume, oldest first; none when the directory is a link."""
    try:
        with beneath.opened(beneath.open_root(volume_path)) as root:
            names = sorted(
                n for n in beneath.list_dir(root, NOTIFICATIONS_DIR) if _is_notification(n)
            )
    except OSError:
        return []
    return [NoteFile(volume_path, name) for name in names[:MAX_FILES_PER_PASS]]


def _is_notification(name: str) -> bool:
    return name.endswith(".json") and not name.startswith(".")


def collect_instance(
    session: Session, instance: Instance, volume_path: Path, settings: Settings
) -> Collected:
    """Record every notification file of one instance; the files to remove after commit."""
    collected = Collected()
    app = session.get(App, instance.app_id)
    assert app is not None
    for note_file in pending_files(volume_path):
        collected.files.append(note_file)
        note = read_note(note_file)
        if note is None:
            log.warning("ignoring malformed notification %s", note_file.name)
            continue
        kind = kinds.OOM if note.get("type") == kinds.OOM else kinds.CRASH
        data = {k: note[k] for k in KEPT_NOTE_FIELDS if k in note} | {"source": "navi"}
        key = note_key(note, kind, instance, note_file.name)
        event = record_event(
            session, app, kind, note_message(note, instance), data, key, instance=instance
        )
        if event is not None:
            collected.events.append(event)
    if collected.events:
        loop = check_crash_loop(session, instance, app, settings)
        if loop is not None:
            collected.events.append(loop)
    return collected


def note_key(note: dict[str, Any], kind: str, instance: Instance, name: str) -> str:
    """The dedupe key of a note: an OOM kill's number when it gives one (the key the host-side
    :class:`OomWatch` gives the same kill, so a kill both see is one event), else its name."""
    kills = note.get("oom_kills")
    if kind == kinds.OOM and type(kills) is int and kills > 0 and instance.container_id:
        return oom_key(instance.container_id, kills)
    return f"navi:{instance.id}:{name}"[:255]


def collect_notifications(
    session: Session, volumes: VolumeProvider, settings: Settings
) -> Collected:
    """One pass over every watched instance's notifications directory."""
    collected = Collected()
    query = select(Instance).where(Instance.state.in_(WATCHED_STATES)).order_by(Instance.id)
    for instance in session.scalars(query).all():
        volume = volumes.get(instance.volume_name)
        if volume is None:
            continue
        found = collect_instance(session, instance, volume.path, settings)
        collected.events += found.events
        collected.files += found.files
    return collected


def remove_files(files: list[NoteFile]) -> None:
    """Delete processed notification files (call after the commit that stored them).

    Each is unlinked in ``notifications/`` opened beneath its volume with no link followed, so
    a directory swapped for a link since the files were read loses nothing of the host's.
    """
    for note_file in files:
        try:
            with beneath.opened(beneath.open_root(note_file.volume)) as root:
                beneath.unlink(root, note_file.relative)
        except FileNotFoundError:
            pass
        except OSError as exc:  # the volume may have gone with its instance, or be hostile
            log.warning("cannot remove notification %s: %s", note_file.name, exc)


# ---------------------------------------------------------------------------------------------
# Crash loops
# ---------------------------------------------------------------------------------------------


def check_crash_loop(
    session: Session, instance: Instance, app: App, settings: Settings
) -> Event | None:
    """Mark the instance crashed and raise ``crash_loop`` after too many crashes in the window."""
    if instance.state == instance_states.CRASHED:
        return None
    since = datetime.now(UTC) - timedelta(seconds=settings.crash_loop_window)
    crashes = session.scalar(
        select(func.count(Event.id)).where(
            Event.instance_id == instance.id,
            Event.type.in_((kinds.CRASH, kinds.OOM)),
            Event.created_at >= since,
        )
    )
    if (crashes or 0) < settings.crash_loop_count:
        return None
    instance.state = instance_states.CRASHED
    latest = session.scalar(select(func.max(Event.id)).where(Event.instance_id == instance.id))
    message = (
        f"{instance.container_name} crashed {crashes} times in "
        f"{settings.crash_loop_window} seconds; it is marked crashed."
    )
    data = {"crashes": crashes, "window": settings.crash_loop_window}
    key = f"crash_loop:{instance.id}:{latest}"
    return record_event(session, app, kinds.CRASH_LOOP, message, data, key, instance=instance)


# ---------------------------------------------------------------------------------------------
# Docker events
# ---------------------------------------------------------------------------------------------


def find_instance(session: Session, event: ContainerEvent) -> Instance | None:
    found = session.scalar(select(Instance).where(Instance.container_id == event.container_id))
    if found is not None:
        return found
    label = event.labels.get(LABEL_INSTANCE, "")
    if label.isdigit():
        return session.get(Instance, int(label))
    return (
        session.scalar(select(Instance).where(Instance.container_name == label)) if label else None
    )


class DockerEvents:
    """Maps Docker ``oom``/``die`` events; remembers recent OOMs to name the death that follows."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.recent_ooms: dict[str, float] = {}

    def handle(self, session: Session, event: ContainerEvent) -> Event | None:
        if event.action == "oom":
            self.recent_ooms[event.container_id] = event.time
            return None
        if event.action != "die":
            return None
        instance = find_instance(session, event)
        if instance is None or instance.state not in UNEXPECTED_DEATH_STATES:
            return None
        oom_at = self.recent_ooms.pop(event.container_id, None)
        oom = oom_at is not None and event.time - oom_at <= OOM_MEMORY
        return self.record_death(session, instance, event, oom)

    def record_death(
        self, session: Session, instance: Instance, event: ContainerEvent, oom: bool
    ) -> Event | None:
        app = session.get(App, instance.app_id)
        assert app is not None
        kind = kinds.OOM if oom else kinds.CRASH
        what = "was killed for running out of memory" if oom else "exited"
        message = f"Container {instance.container_name} {what} (exit code {event.exit_code})."
        data = {"source": "docker", "exit_code": event.exit_code, "time": event.time}
        key = f"docker:{event.container_id[:64]}:die:{int(event.time)}"
        recorded = record_event(session, app, kind, message, data, key, instance=instance)
        if recorded is not None:
            # The whole container is gone, not just a process supervisord could restart.
            instance.state = instance_states.CRASHED
        return recorded


# ---------------------------------------------------------------------------------------------
# OOM kills of any process, from the containers' memory cgroups
# ---------------------------------------------------------------------------------------------


def collect_oom_kills(session: Session, watch: OomWatch, settings: Settings) -> list[Event]:
    """One pass over every watched instance's OOM-kill counter; a crash loop as well."""
    query = select(Instance).where(Instance.state.in_(WATCHED_STATES)).order_by(Instance.id)
    watched = session.scalars(query).all()
    events = watch.poll(session, watched)
    for instance in watched:
        if any(event.instance_id == instance.id for event in events):
            app = session.get(App, instance.app_id)
            assert app is not None
            loop = check_crash_loop(session, instance, app, settings)
            if loop is not None:
                events.append(loop)
    return events


# ---------------------------------------------------------------------------------------------
# The loop `slipway server` runs
# ---------------------------------------------------------------------------------------------

SessionOpener = webhooks.SessionOpener


def requeue_overdue(session: Session, grace: float) -> list[int]:
    """Send again deliveries whose message was lost (broker down at commit, flushed queue)."""
    now = datetime.now(UTC)
    ids = webhooks.overdue_deliveries(session, now, grace)
    for delivery_id in ids:
        webhooks.touch(session, delivery_id, now)  # not overdue again before another grace
        enqueue_after_commit(session, webhooks.DELIVER_TASK, delivery_id)
    return ids


@dataclass
class Watcher:
    """One collector pass after another: Docker events, notification files, lost deliveries."""

    open_session: SessionOpener
    runtime: ContainerRuntime
    volumes: VolumeProvider
    settings: Settings
    overdue_grace: float = 600.0
    since: float = field(default_factory=time.time)
    oom_log: OomLog | None = None  # the kernel's log, to name OOM-killed processes

    def __post_init__(self) -> None:
        self.docker = DockerEvents(self.settings)
        self.oom = OomWatch(self.runtime, self.oom_log)

    def poll_once(self) -> list[int]:
        """One pass; the ids of the events recorded."""
        until = time.time()
        recorded: list[int] = []
        with self.open_session() as session:
            for container_event in self.runtime.events(since=self.since, until=until):
                found = self.docker.handle(session, container_event)
                if found is not None:
                    recorded.append(found.id)
        self.since = until
        with self.open_session() as session:
            collected = collect_notifications(session, self.volumes, self.settings)
            recorded += [e.id for e in collected.events]
        remove_files(collected.files)  # only now: the events are committed
        with self.open_session() as session:  # after the notes: Navi's may name the same kill
            recorded += [e.id for e in collect_oom_kills(session, self.oom, self.settings)]
        with self.open_session() as session:
            requeue_overdue(session, self.overdue_grace)
        return recorded

    def run(self, stop: threading.Event) -> None:
        """Poll every ``notifications_poll`` seconds until ``stop`` is set; errors are logged."""
        while not stop.is_set():
            try:
                self.poll_once()
            except Exception:  # a bad pass must not end the collector; the next one retries
                log.exception("collector pass failed")
            stop.wait(self.settings.notifications_poll)
