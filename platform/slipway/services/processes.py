"""Process control: ``supervisorctl`` run inside an instance's container through ``docker exec``.

Each instance's supervisord runs one program named after the process type (see
``layout.render_supervisor_conf``) next to Navi, and listens on a unix socket only. Stopping a
process keeps its container and volume: the instance is marked ``stopped``, which takes it out
of the router, and the reconciler leaves it alone (it only restarts ``live`` and ``crashed``
instances). Starting it again marks it ``live``. The next deploy replaces it like any other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.adapters import Adapters
from slipway.models import App, Instance
from slipway.models.instance import CRASHED, DRAINING, LIVE, STARTING, STOPPED
from slipway.runtime.base import ContainerError, RuntimeUnavailable
from slipway.services.errors import Conflict, Invalid, NotFound, Unavailable
from slipway.services.routing import routes_from_db

SUPERVISORCTL = ["supervisorctl", "-c", "/etc/supervisor/supervisord.conf"]
ACTIONS = ("restart", "stop", "start")
# Instances whose container runs supervisord (draining ones are being stopped by a deploy).
CONTROLLED_STATES = (STARTING, LIVE, CRASHED, STOPPED)
LISTED_STATES = (*CONTROLLED_STATES, DRAINING)
# supervisorctl errors that only mean the process already is where we want it.
HARMLESS = ("(already started)", "(not running)")

# "web    RUNNING   pid 42, uptime 1 day, 2:03:04" (supervisor formats the uptime with
# datetime.timedelta); other states carry a free-form description, or none.
_STATUS_LINE = re.compile(r"^(?P<name>\S+)\s+(?P<state>[A-Z]+)(?:\s+(?P<description>.*))?$")
_RUNNING = re.compile(
    r"pid (?P<pid>\d+), uptime (?:(?P<days>\d+) days?, )?(?P<h>\d+):(?P<m>\d\d):(?P<s>\d\d)"
)


@dataclass(frozen=True)
class ProgramStatus:
    """One line of ``supervisorctl status``."""

    name: str
    state: str  # supervisord's word: RUNNING, STARTING, STOPPED, BACKOFF, FATAL, EXITED, ...
    pid: int | None = None
    uptime: int | None = None  # seconds, for a running program
    description: str = ""


def parse_status(output: str) -> dict[str, ProgramStatus]:
    """Every program in the output of ``supervisorctl status``, by name."""
    programs: dict[str, ProgramStatus] = {}
    for line in output.splitlines():
        match = _STATUS_LINE.match(line.strip())
        if match is None:
            continue  # "unix:///... no such file" and other complaints are not programs
        description = (match["description"] or "").strip()
        pid = uptime = None
        running = _RUNNING.search(description)
        if running is not None:
            pid = int(running["pid"])
            days = int(running["days"] or 0)
            uptime = ((days * 24 + int(running["h"])) * 60 + int(running["m"])) * 60 + int(
                running["s"]
            )
        programs[match["name"]] = ProgramStatus(
            match["name"], match["state"], pid, uptime, description
        )
    return programs


def format_uptime(seconds: int | None) -> str | None:
    """``"3d 4h"``, ``"2h 5m"``, ``"4m 10s"`` or ``"12s"``."""
    if seconds is None:
        return None
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


# ----------------------------------------------------------------------------- instances


def instance_label(instance: Instance) -> str:
    return f"{instance.process_type}.{instance.index}"


def app_instances(session: Session, app: App, states: tuple[str, ...]) -> list[Instance]:
    query = select(Instance).where(Instance.app_id == app.id, Instance.state.in_(states))
    return list(session.scalars(query.order_by(Instance.process_type, Instance.index, Instance.id)))


def select_instances(
    session: Session, app: App, process_type: str, which: object = None
) -> list[Instance]:
    """The instances of ``process_type`` to act on: all, or the one ``which`` names.

    ``which`` is an index (``2`` or ``"2"``), a label (``"web.2"``) or a container name.
    """
    found = [i for i in app_instances(session, app, CONTROLLED_STATES) if i.container_id]
    if not found:
        raise NotFound(f"App {app.name!r} has no running instances; deploy it first.")
    of_type = [i for i in found if i.process_type == process_type]
    if not of_type:
        types = ", ".join(sorted({i.process_type for i in found}))
        raise NotFound(f"App {app.name!r} has no {process_type} instances (it runs: {types}).")
    if which is None or which == "":
        return of_type
    if isinstance(which, bool) or not isinstance(which, int | str):
        raise Invalid('"instance" must be an index such as 1, or a name such as "web.1".')
    wanted = str(which)
    chosen = [i for i in of_type if wanted in (str(i.index), instance_label(i), i.container_name)]
    if not chosen:
        names = ", ".join(instance_label(i) for i in of_type)
        raise NotFound(f"App {app.name!r} has no instance {wanted!r} (there are: {names}).")
    return chosen


# ----------------------------------------------------------------------------- supervisorctl


def supervisorctl(adapters: Adapters, instance: Instance, args: list[str]) -> str:
    """Run ``supervisorctl <args>`` in the instance's container; its output."""
    if not instance.container_id:
        raise Conflict(f"{instance_label(instance)} has no container yet.")
    try:
        result = adapters.runtime.exec(instance.container_id, [*SUPERVISORCTL, *args])
    except RuntimeUnavailable as exc:
        raise Unavailable(str(exc)) from exc
    except ContainerError as exc:
        raise Conflict(f"{instance_label(instance)} cannot be reached: {exc}") from exc
    return result.output


def program_status(adapters: Adapters, instance: Instance) -> ProgramStatus:
    """The supervisor state of the instance's program (``UNKNOWN`` when it cannot be read)."""
    try:
        output = supervisorctl(adapters, instance, ["status", instance.process_type])
    except (Conflict, Unavailable) as exc:
        return ProgramStatus(instance.process_type, "UNKNOWN", description=str(exc))
    found = parse_status(output).get(instance.process_type)
    if found is None:
        return ProgramStatus(instance.process_type, "UNKNOWN", description=output.strip()[-200:])
    return found


def process_view(instance: Instance, status: ProgramStatus) -> dict[str, Any]:
    return {
        "name": instance_label(instance),
        "process_type": instance.process_type,
        "index": instance.index,
        "instance_state": instance.state,
        "container": instance.container_name,
        "release": instance.release.version,
        "port": instance.host_port,
        "state": status.state,
        "pid": status.pid,
        "uptime": format_uptime(status.uptime),
        "uptime_seconds": status.uptime,
        "description": status.description,
    }


def list_processes(session: Session, adapters: Adapters, app: App) -> dict[str, Any]:
    """The formation and every instance's process with its supervisor state, pid and uptime."""
    processes = [
        process_view(instance, program_status(adapters, instance))
        for instance in app_instances(session, app, LISTED_STATES)
    ]
    return {"app": app.name, "formation": dict(app.formation), "processes": processes}


# ----------------------------------------------------------------------------- control


def control(
    session: Session,
    adapters: Adapters,
    app: App,
    process_type: str,
    action: str,
    which: object = None,
) -> dict[str, Any]:
    """``restart``, ``stop`` or ``start`` the process in the chosen instances; their new state."""
    if action not in ACTIONS:
        raise Invalid(f"{action!r} is not one of: {', '.join(ACTIONS)}.")
    chosen = select_instances(session, app, process_type, which)
    if action == "stop":
        _stop(session, adapters, chosen)
    else:
        _start(session, adapters, chosen, action)
    processes = [process_view(i, program_status(adapters, i)) for i in chosen]
    return {"app": app.name, "action": action, "processes": processes}


def _stop(session: Session, adapters: Adapters, chosen: list[Instance]) -> None:
    # Out of the router first, so no new request reaches a process that is going away.
    before = {i.id: i.state for i in chosen}
    for instance in chosen:
        instance.state = STOPPED
    _apply_routes(session, adapters)
    # Committed before supervisorctl waits for the process (up to stopwaitsecs): a write
    # transaction held that long would lock SQLite out for the deploys running meanwhile.
    session.commit()
    try:
        for instance in chosen:
            _expect(supervisorctl(adapters, instance, ["stop", instance.process_type]), instance)
    except Exception:
        for instance in chosen:
            instance.state = before[instance.id]
        _apply_routes(session, adapters)
        session.commit()
        raise


def _start(session: Session, adapters: Adapters, chosen: list[Instance], action: str) -> None:
    # supervisorctl first, with no write transaction open (see _stop); the states after.
    for instance in chosen:
        _expect(supervisorctl(adapters, instance, [action, instance.process_type]), instance)
        if instance.state == STOPPED:
            instance.state = LIVE
    _apply_routes(session, adapters)


def _expect(output: str, instance: Instance) -> None:
    """Raise when supervisorctl reported an error other than "already so"."""
    for line in output.splitlines():
        if "ERROR" in line and not line.rstrip().endswith(HARMLESS):
            raise Conflict(f"{instance_label(instance)}: supervisorctl said: {line.strip()}")


def _apply_routes(session: Session, adapters: Adapters) -> None:
    session.flush()
    adapters.router.apply(routes_from_db(session))
