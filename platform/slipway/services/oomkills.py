"""OOM kills of any process in an instance, seen from the host: one ``oom`` event per kill.

Navi, inside the container, hears only of the programs supervisord runs: a gunicorn worker or a
child process the kernel kills for memory is replaced by its parent, and supervisord sees
nothing. Docker's ``oom`` event of a container that goes on living is no death either. The
kernel, though, counts every kill in the container's memory cgroup; each collector pass reads
that counter for every watched instance, and names the victims from the kernel's log when it
can be read.

The n-th kill of a container is stored under the key ``oom:<container id>:<n>``, which Navi's
note of a supervised program killed for memory carries too (its ``oom_kills``): a kill both
see is one event. A kill is recorded one pass after it is first counted, so Navi's note, with
the program's name, exit signal and log tail, usually comes first.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.models import App, Event, Instance
from slipway.models import event as kinds
from slipway.runtime.base import ContainerRuntime
from slipway.runtime.kernel import OomLog, OomVictim
from slipway.services.events import record_event

log = logging.getLogger(__name__)

MAX_EVENTS_PER_PASS = 5  # per instance; more kills in one pass become one event counting them
VICTIMS_KEPT = 64  # names waiting for their kill to be counted, per container


def oom_key(container_id: str, kill: int) -> str:
    """The dedupe key of a container's ``kill``-th OOM kill."""
    return f"oom:{container_id[:64]}:{kill}"


class OomWatch:
    """Turns rises of each watched container's OOM-kill counter into ``oom`` events."""

    def __init__(self, runtime: ContainerRuntime, oom_log: OomLog | None = None) -> None:
        self.runtime = runtime
        self.oom_log = oom_log
        self.recorded: dict[str, int] = {}  # container -> kills already stored (or skipped)
        self.counted: dict[str, int] = {}  # container -> the counter at the previous pass
        self.victims: dict[str, deque[str]] = {}  # container -> names of uncounted victims

    def poll(self, session: Session, instances: Iterable[Instance]) -> list[Event]:
        """One pass over ``instances``; the events recorded (the caller commits)."""
        running = {i.container_id: i for i in instances if i.container_id}
        # Counters before the log: every kill counted now is already in the log.
        counts = {cid: self.runtime.oom_kills(cid) for cid in running}
        self._file_victims(self.oom_log.read() if self.oom_log else [], running)
        recorded: list[Event] = []
        for cid, instance in running.items():
            count = counts[cid]
            if count is None:
                self._forget(cid)  # gone: Docker's die event tells of a whole container's end
                continue
            recorded += self._container(session, instance, cid, count)
        for cid in set(self.recorded) - set(running):
            self._forget(cid)
        return recorded

    def _file_victims(self, victims: list[OomVictim], running: dict[str, Instance]) -> None:
        for victim in victims:
            for cid in running:
                if cid in victim.cgroup:
                    self.victims.setdefault(cid, deque(maxlen=VICTIMS_KEPT)).append(victim.name)

    def _container(self, session: Session, instance: Instance, cid: str, count: int) -> list[Event]:
        if cid not in self.recorded:  # first sight since the collector started
            self.recorded[cid] = min(count, recorded_kills(session, cid))
            self._drop_victims(cid, keep=count - self.recorded[cid])
        ready = min(count, self.counted.get(cid, 0))  # counted a pass ago
        self.counted[cid] = count
        first = self.recorded[cid] + 1
        if ready < first:
            return []
        self.recorded[cid] = ready
        kills = list(range(first, ready + 1))
        names = [self._next_victim(cid) for _ in kills]
        app = session.get(App, instance.app_id)
        assert app is not None
        if len(kills) > MAX_EVENTS_PER_PASS:
            found = [record_kills(session, app, instance, kills, names)]
        else:
            found = [
                record_kill(session, app, instance, k, n) for k, n in zip(kills, names, strict=True)
            ]
        return [event for event in found if event is not None]

    def _next_victim(self, cid: str) -> str | None:
        queue = self.victims.get(cid)
        return queue.popleft() if queue else None

    def _drop_victims(self, cid: str, keep: int) -> None:
        """Forget names of kills stored before the collector started (the log still has them)."""
        queue = self.victims.get(cid)
        while queue and len(queue) > max(keep, 0):
            queue.popleft()

    def _forget(self, cid: str) -> None:
        for known in (self.recorded, self.counted, self.victims):
            known.pop(cid, None)


def recorded_kills(session: Session, container_id: str) -> int:
    """The highest kill number stored for the container (by this watch or by Navi's notes)."""
    prefix = oom_key(container_id, 0)[:-1]
    keys = session.scalars(select(Event.dedupe_key).where(Event.dedupe_key.startswith(prefix)))
    numbers = [int(key[len(prefix) :]) for key in keys if key and key[len(prefix) :].isdigit()]
    return max(numbers, default=0)


def record_kill(
    session: Session, app: App, instance: Instance, kill: int, name: str | None
) -> Event | None:
    who = f"Process {name}" if name else "A process"
    message = f"{who} of {instance.container_name} ran out of memory (killed by the kernel)."
    data: dict[str, object] = {"source": "cgroup", "oom_kills": kill}
    if name:
        data["process"] = name
    key = oom_key(instance.container_id or "", kill)
    return record_event(session, app, kinds.OOM, message, data, key, instance=instance)


def record_kills(
    session: Session, app: App, instance: Instance, kills: list[int], names: list[str | None]
) -> Event | None:
    """One event for many kills in one pass (a process forked and killed again and again)."""
    known = sorted({name for name in names if name})
    which = f" ({', '.join(known)})" if known else ""
    message = (
        f"{len(kills)} processes of {instance.container_name} ran out of memory{which} "
        "(killed by the kernel)."
    )
    data: dict[str, object] = {"source": "cgroup", "oom_kills": kills[-1], "kills": len(kills)}
    if known:
        data["processes"] = known
    key = oom_key(instance.container_id or "", kills[-1])
    return record_event(session, app, kinds.OOM, message, data, key, instance=instance)
