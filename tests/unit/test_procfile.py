"""Procfile process types, the release phase, app.json in a deploy, and deploy events (fakes)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.adapters import Adapters
from slipway.config import Settings
from slipway.models import App, Event, Instance, Release
from slipway.runtime.base import BuildResult, BuildSpec
from slipway.services import archives, deploys, instances, releases
from slipway.services.errors import Invalid
from tests.fakes import BuildingRuntime, RecordingSender, fake_adapters
from tests.unit import test_pipeline
from tests.unit.test_pipeline import STATIC, deploy, live, router, volumes

settings = test_pipeline.settings
session = test_pipeline.session
sent = test_pipeline.sent
app = test_pipeline.app

WEB = "web: serve\n"


@dataclass
class PhaseRuntime(BuildingRuntime):
    """Builds copy the source; one-off phase containers print a line and exit as told."""

    phase_exit: dict[str, int] = field(default_factory=dict)
    phases: list[BuildSpec] = field(default_factory=list)
    failing_paths: set[str] = field(default_factory=set)

    def run_build(self, spec: BuildSpec, on_line: Callable[[str], None]) -> BuildResult:
        if spec.command == ["build"]:
            return super().run_build(spec, on_line)
        self.phases.append(spec)
        name = spec.env["SLIPWAY_PROCESS_TYPE"]
        on_line(f"{name} says hello")
        return BuildResult(self.phase_exit.get(name, 0), False, 0.1)

    def wait_for_port(self, host_port: int, timeout: float, health_path: str | None = None) -> bool:
        if health_path in self.failing_paths:
            return False
        return super().wait_for_port(host_port, timeout, health_path)


@pytest.fixture
def adapters(tmp_path: Path) -> Adapters:
    adapters = fake_adapters(tmp_path)
    adapters.runtime = PhaseRuntime()
    return adapters


def phases(adapters: Adapters) -> PhaseRuntime:
    assert isinstance(adapters.runtime, PhaseRuntime)
    return adapters.runtime


def event_types(session: Session) -> list[str]:
    return list(session.scalars(select(Event.type).order_by(Event.id)))


def with_app_json(data: object, procfile: str = WEB) -> dict[str, str]:
    return {**STATIC, "Procfile": procfile, "app.json": json.dumps(data)}


# ----------------------------------------------------------------------------- Procfile


def test_procfile_parsing(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_text("web: serve\r\nrelease: migrate --now\r\n# note\n")
    assert archives.read_procfile(tmp_path) == {"web": "serve", "release": "migrate --now"}
    (tmp_path / "Procfile").write_text("web: a\nworker: b\nweb: c\n")
    with pytest.raises(Invalid, match="line 3 names the process type 'web' again"):
        archives.read_procfile(tmp_path)
    (tmp_path / "Procfile").write_text("web:\n")
    with pytest.raises(Invalid, match="line 1 is not 'name: command'"):
        archives.read_procfile(tmp_path)


def test_release_phases_run_predeploy_then_release() -> None:
    assert releases.release_phases({"web": "a"}, None) == []
    assert releases.release_phases({"release": "m"}, "seed") == [
        releases.Phase("predeploy", ["bash", "-c", "seed"]),
        releases.Phase("release", ["start", "release"]),
    ]


def test_release_is_never_scaled_nor_started_as_instances(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    with pytest.raises(Invalid, match="cannot be scaled"):
        instances.scale(session, app, {"release": 1})
    app.formation = {"web": 1, "release": 1, "worker": 2}
    session.commit()
    done = deploy(session, app, adapters, settings, {**STATIC, "Procfile": WEB + "release: m\n"})
    assert done.state == "succeeded", done.error
    assert sorted(i.process_type for i in live(session, app)) == ["web"]


def test_web_and_worker_scale_separately_only_web_is_routed(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    deploy(session, app, adapters, settings, {**STATIC, "Procfile": WEB + "worker: work\n"})
    assert instances.scale(session, app, {"web": 2, "worker": 1}) == {"web": 2, "worker": 1}
    session.commit()
    [(name, (app_id, release_id))] = sent.sent[-1:]
    assert name == "slipway.roll"
    deploys.run_roll(session, app_id, release_id, adapters, settings)
    running = live(session, app)
    assert sorted(f"{i.process_type}.{i.index}" for i in running) == ["web.1", "web.2", "worker.1"]
    webs = sorted(i.host_port or 0 for i in running if i.process_type == "web")
    assert router(adapters).routes[0].upstreams == webs


# ----------------------------------------------------------------------------- release phase


def test_release_phase_runs_in_a_one_off_container_of_the_new_release(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    app.config = {"DATABASE_URL": "postgres://db"}
    session.commit()
    done = deploy(session, app, adapters, settings, {**STATIC, "Procfile": WEB + "release: m\n"})
    assert done.state == "succeeded", done.error
    [spec] = phases(adapters).phases
    assert spec.command == ["start", "release"] and spec.timeout == settings.release_timeout
    assert spec.image == "slipway/run-static:latest"
    assert spec.env["DATABASE_URL"] == "postgres://db" and "PORT" not in spec.env
    assert spec.env["SLIPWAY_PROCESS_TYPE"] == "release"
    assert spec.labels["io.slipway.kind"] == "run"
    assert spec.labels["io.slipway.deploy"] == str(done.id)
    [mount] = spec.mounts
    assert mount.target == "/mnt" and mount.source.name in volumes(adapters).destroyed
    assert (mount.source / "app" / "index.html").is_file()  # the new slug, laid out as /mnt/app
    log = Path(done.log_path).read_text()
    assert log.index("Running the release phase of v1") < log.index("Released v1")
    assert "release says hello" in log


def test_failing_release_phase_aborts_and_the_old_release_serves(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    deploy(session, app, adapters, settings, {**STATIC, "Procfile": WEB + "release: m\n"})
    [old] = live(session, app)
    routes_before = router(adapters).routes
    phases(adapters).phase_exit["release"] = 3
    failed = deploy(session, app, adapters, settings, {**STATIC, "Procfile": WEB + "release: m\n"})
    assert failed.state == "failed"
    assert failed.error == "The release phase failed (exit code 3); the log says why."
    assert failed.release_id is None
    assert [i.id for i in live(session, app)] == [old.id]
    assert router(adapters).routes == routes_before
    assert [r.version for r in session.scalars(select(Release))] == [1]
    assert set(volumes(adapters).volumes) == {old.volume_name}
    assert event_types(session) == ["released", "deploy_succeeded", "deploy_failed"]
    failed_event = session.scalars(select(Event).order_by(Event.id.desc())).first()
    assert failed_event is not None and failed_event.data["deploy_id"] == failed.id


def test_failing_predeploy_aborts_before_the_release_phase(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    phases(adapters).phase_exit["predeploy"] = 1
    files = with_app_json({"scripts": {"predeploy": "./migrate"}}, WEB + "release: m\n")
    failed = deploy(session, app, adapters, settings, files)
    assert failed.error == "The predeploy phase failed (exit code 1); the log says why."
    assert [s.command for s in phases(adapters).phases] == [["bash", "-c", "./migrate"]]
    assert live(session, app) == [] and app.current_release is None


def test_postdeploy_runs_once_after_the_first_deploy_and_only_warns(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    phases(adapters).phase_exit["postdeploy"] = 5
    files = with_app_json({"scripts": {"postdeploy": "./seed"}})
    first = deploy(session, app, adapters, settings, files)
    assert first.state == "succeeded", first.error
    log = Path(first.log_path).read_text()
    assert "warning: The postdeploy phase failed (exit code 5)" in log
    assert log.index("Traffic switched") < log.index("Running the postdeploy phase")
    second = deploy(session, app, adapters, settings, files)
    assert second.state == "succeeded"
    assert [s.env["SLIPWAY_PROCESS_TYPE"] for s in phases(adapters).phases] == ["postdeploy"]


# ----------------------------------------------------------------------------- app.json


def test_app_json_formation_on_first_deploy_then_scale_wins(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    files = with_app_json({"formation": {"web": {"quantity": 2}, "worker": 1}}, WEB + "worker: w\n")
    deploy(session, app, adapters, settings, files)
    assert app.formation == {"web": 2, "worker": 1}
    assert len(live(session, app)) == 3
    app.formation = {"web": 1, "worker": 0}
    session.commit()
    deploy(session, app, adapters, settings, files)
    assert app.formation == {"web": 1, "worker": 0}
    assert [i.process_type for i in live(session, app)] == ["web"]


def test_failing_app_json_health_check_blocks_the_switch(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    check = {"path": "/health", "timeout": 1, "attempts": 2, "wait": 0}
    first = deploy(
        session, app, adapters, settings, with_app_json({"healthchecks": {"web": [check]}})
    )
    assert first.state == "succeeded", first.error
    [old] = live(session, app)
    phases(adapters).failing_paths = {"/health"}
    failed = deploy(
        session, app, adapters, settings, with_app_json({"healthchecks": {"web": [check]}})
    )
    assert failed.error == (
        "The new release did not pass its app.json health check GET /health (2 attempts of 1 s)."
    )
    assert [i.id for i in live(session, app)] == [old.id]
    assert router(adapters).routes[0].upstreams == [old.host_port]
    assert app.current_release is not None and app.current_release.version == 1


@pytest.mark.parametrize("change", ["config", "rollback"])
def test_the_release_health_checks_gate_config_changes_and_rollbacks_too(
    session: Session,
    app: App,
    adapters: Adapters,
    settings: Settings,
    sent: RecordingSender,
    change: str,
) -> None:
    check = {"path": "/health", "timeout": 1, "attempts": 2, "wait": 0}
    files = with_app_json({"healthchecks": {"web": [check]}})
    for _ in range(2):
        assert deploy(session, app, adapters, settings, files).state == "succeeded"
    [old] = live(session, app)
    assert app.current_release is not None
    assert app.current_release.health_checks == [
        {"path": "/health", "timeout": 1.0, "attempts": 2, "wait": 0.0, "initial_delay": 0.0}
    ]

    phases(adapters).failing_paths = {"/health"}  # what the new instances answer now
    if change == "config":
        release = releases.change_config(session, app, {"FEATURE": "on"})
    else:
        release = releases.rollback(session, app, 1)
    session.commit()
    assert release is not None and release.health_checks == app.current_release.health_checks
    with pytest.raises(instances.StartFailed, match="app.json health check GET /health"):
        deploys.run_roll(session, app.id, release.id, adapters, settings)
    session.rollback()
    assert [i.id for i in live(session, app)] == [old.id]
    assert router(adapters).routes[0].upstreams == [old.host_port]
    assert app.current_release.version == 2


def test_malformed_app_json_fails_the_build_and_unknown_keys_warn(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    bad = deploy(session, app, adapters, settings, with_app_json({"formation": {"web": "two"}}))
    assert bad.state == "failed"
    assert bad.error == (
        'app.json "formation.web": the quantity must be a whole number from 0 to 10.'
    )
    assert phases(adapters).builds == []  # refused before the build image ran
    good = deploy(session, app, adapters, settings, with_app_json({"addons": []}))
    assert good.state == "succeeded"
    assert "warning: app.json key 'addons' is not used" in Path(good.log_path).read_text()


# ----------------------------------------------------------------------------- events, stopping


def test_deploy_events_and_their_webhook_deliveries(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    from slipway.services import webhooks

    webhooks.create_webhook(session, app, "https://example.com/hook", ["deploy_succeeded"])
    session.commit()
    done = deploy(session, app, adapters, settings, STATIC)
    released, succeeded = session.scalars(select(Event).order_by(Event.id)).all()
    assert (released.type, released.data["version"]) == ("released", 1)
    assert succeeded.type == "deploy_succeeded" and succeeded.data == {
        "deploy_id": done.id,
        "version": 1,
    }
    assert sent.names().count("slipway.deliver") == 1


def test_config_roll_records_released_and_a_failed_roll_is_an_event(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    deploy(session, app, adapters, settings, {**STATIC, "Procfile": WEB + "release: m\n"})
    releases.change_config(session, app, {"A": "1"})
    session.commit()
    deploys.run_roll(session, app.id, sent.sent[-1][1][1], adapters, settings)
    assert event_types(session)[-1] == "released"
    assert len(phases(adapters).phases) == 2  # the release phase ran for v2 as well

    phases(adapters).phase_exit["release"] = 1
    releases.change_config(session, app, {"A": "2"})
    session.commit()
    with pytest.raises(releases.PhaseFailed):
        deploys.run_roll(session, app.id, sent.sent[-1][1][1], adapters, settings)
    assert event_types(session)[-1] == "deploy_failed"
    assert app.current_release is not None and app.current_release.version == 2


def test_instances_are_draining_before_their_container_stops(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    deploy(session, app, adapters, settings, STATIC)
    states: list[str | None] = []
    stop = adapters.runtime.stop
    engine = session.get_bind()

    def checking_stop(container_id: str, timeout: float = 10) -> None:
        with Session(engine) as other:  # what the collector would read right now
            query = select(Instance.state).where(Instance.container_id == container_id)
            states.append(other.scalar(query))
        stop(container_id, timeout)

    adapters.runtime.stop = checking_stop  # type: ignore[method-assign]
    deploy(session, app, adapters, settings, STATIC)  # drains v1
    phases(adapters).dead_releases = {"3"}
    deploy(session, app, adapters, settings, STATIC)  # undoes v3's new instance
    assert states == ["draining", "draining"]
