"""Process control with fakes: parsing `supervisorctl status`, stop/start states, the router."""

# ruff: noqa: F811  # the fixtures imported from test_pipeline are requested by parameter name
from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from sqlalchemy.orm import Session

from slipway.adapters import Adapters
from slipway.config import Settings
from slipway.models import App
from slipway.runtime.base import ExecResult
from slipway.services import instances, processes, reconciler
from slipway.services.errors import Conflict, Invalid, NotFound
from tests.unit.test_pipeline import (  # noqa: F401  (fixtures are used by name)
    STATIC,
    BuildingRuntime,
    adapters,
    app,
    deploy,
    router,
    sent,
    session,
    settings,
)

STATUS = """\
navi                             RUNNING   pid 7, uptime 0:03:10
web                              RUNNING   pid 42, uptime 2 days, 1:02:03
worker                           STOPPED   Mar 10 12:00 PM
clock                            FATAL     Exited too quickly (process log may have details)
unix:///mnt/tmp/supervisor.sock no such file
"""


def test_parse_status_reads_state_pid_and_uptime() -> None:
    found = processes.parse_status(STATUS)
    assert set(found) == {"navi", "web", "worker", "clock"}
    web = found["web"]
    assert (web.state, web.pid, web.uptime) == ("RUNNING", 42, 2 * 86400 + 3723)
    assert found["navi"].uptime == 190
    assert (found["worker"].state, found["worker"].pid) == ("STOPPED", None)
    assert found["clock"].description.startswith("Exited too quickly")


def test_parse_status_one_day_and_no_description() -> None:
    found = processes.parse_status("web RUNNING pid 9, uptime 1 day, 0:00:05\nx STARTING\n")
    assert found["web"].uptime == 86405
    assert found["x"].state == "STARTING" and found["x"].description == ""


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, None), (12, "12s"), (250, "4m 10s"), (7500, "2h 5m"), (273600, "3d 4h")],
)
def test_format_uptime(seconds: int | None, text: str | None) -> None:
    assert processes.format_uptime(seconds) == text


# ----------------------------------------------------------------------------- control


@dataclass
class SupervisedRuntime(BuildingRuntime):
    """Containers whose supervisord answers ``supervisorctl`` like the real one."""

    programs: dict[str, tuple[str, int]] = field(default_factory=dict)  # container: state, pid
    execs: list[list[str]] = field(default_factory=list)

    def exec(self, container_id: str, command: list[str], user: str | None = None) -> ExecResult:
        self.execs.append(command)
        verb, name = command[-2], command[-1]
        state, pid = self.programs.get(container_id, ("RUNNING", 100))
        if verb == "status":
            if state == "RUNNING":
                return ExecResult(0, f"{name}  RUNNING   pid {pid}, uptime 0:00:07\n")
            return ExecResult(3, f"{name}  STOPPED   Not started\n")
        if verb == "stop":
            self.programs[container_id] = ("STOPPED", pid)
            return ExecResult(0, f"{name}: stopped\n")
        if verb in ("start", "restart"):
            self.programs[container_id] = ("RUNNING", pid + 1)
            return ExecResult(0, f"{name}: started\n")
        return ExecResult(1, "unknown")


@pytest.fixture
def supervised(adapters: Adapters) -> Adapters:
    adapters.runtime = SupervisedRuntime()
    return adapters


def _deployed(session: Session, app: App, adapters: Adapters, settings: Settings) -> None:
    assert deploy(session, app, adapters, settings, STATIC).state == "succeeded"


def test_list_processes_shows_pid_and_uptime(
    session: Session, app: App, supervised: Adapters, settings: Settings, sent: object
) -> None:
    _deployed(session, app, supervised, settings)
    listed = processes.list_processes(session, supervised, app)
    assert listed["formation"] == {"web": 1}
    (web,) = listed["processes"]
    assert (web["name"], web["state"], web["pid"], web["uptime"]) == ("web.1", "RUNNING", 100, "7s")
    assert web["instance_state"] == "live" and web["release"] == 1


def test_stop_keeps_the_instance_out_of_the_router_and_the_reconciler_leaves_it(
    session: Session, app: App, supervised: Adapters, settings: Settings, sent: object
) -> None:
    _deployed(session, app, supervised, settings)
    assert router(supervised).routes[0].upstreams
    result = processes.control(session, supervised, app, "web", "stop")
    assert result["processes"][0]["state"] == "STOPPED"
    (instance,) = instances.running_instances(session, app)
    assert instance.state == "stopped"
    assert router(supervised).routes[0].upstreams == []
    session.commit()
    report = reconciler.reconcile(session, supervised, settings)
    assert report.restarted == [] and report.removed_containers == []
    assert instance.state == "stopped"

    processes.control(session, supervised, app, "web", "start", which="web.1")
    assert instance.state == "live"
    assert router(supervised).routes[0].upstreams == [instance.host_port]


def test_restart_gives_a_new_pid(
    session: Session, app: App, supervised: Adapters, settings: Settings, sent: object
) -> None:
    _deployed(session, app, supervised, settings)
    before = processes.list_processes(session, supervised, app)["processes"][0]["pid"]
    after = processes.control(session, supervised, app, "web", "restart", which=1)
    assert after["processes"][0]["pid"] == before + 1


def test_a_deploy_replaces_a_stopped_instance(
    session: Session, app: App, supervised: Adapters, settings: Settings, sent: object
) -> None:
    _deployed(session, app, supervised, settings)
    processes.control(session, supervised, app, "web", "stop")
    session.commit()
    _deployed(session, app, supervised, settings)
    (instance,) = instances.running_instances(session, app)
    assert instance.state == "live" and instance.release.version == 2


def test_clear_errors(
    session: Session, app: App, supervised: Adapters, settings: Settings, sent: object
) -> None:
    with pytest.raises(NotFound, match="no running instances"):
        processes.control(session, supervised, app, "web", "restart")
    _deployed(session, app, supervised, settings)
    with pytest.raises(NotFound, match="no worker instances"):
        processes.control(session, supervised, app, "worker", "restart")
    with pytest.raises(NotFound, match="no instance '3'"):
        processes.control(session, supervised, app, "web", "restart", which=3)
    with pytest.raises(Invalid):
        processes.control(session, supervised, app, "web", "reload")
    with pytest.raises(Invalid):
        processes.control(session, supervised, app, "web", "stop", which=["web.1"])


def test_a_supervisorctl_error_is_a_conflict_and_the_state_is_restored(
    session: Session, app: App, supervised: Adapters, settings: Settings, sent: object
) -> None:
    _deployed(session, app, supervised, settings)

    def refuse(container_id: str, command: list[str], user: str = "") -> ExecResult:
        return ExecResult(1, "web: ERROR (spawn error)\n")

    supervised.runtime.exec = refuse  # type: ignore[method-assign]
    with pytest.raises(Conflict, match="spawn error"):
        processes.control(session, supervised, app, "web", "stop")
    (instance,) = instances.running_instances(session, app)
    assert instance.state == "live"
    assert router(supervised).routes[0].upstreams == [instance.host_port]
