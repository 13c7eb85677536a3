"""Cancelling deploys with fakes: queued, building, starting, finished, and with the worker gone."""

# ruff: noqa: F811  # the fixtures imported from test_pipeline are requested by parameter name

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.adapters import Adapters
from slipway.config import Settings
from slipway.db import make_engine, make_session_factory
from slipway.models import App, Deploy, Event
from slipway.runtime.base import BuildResult, BuildSpec, ContainerInfo
from slipway.services import deploy_cancel, deploys, instances
from slipway.services.builds import LABEL_DEPLOY
from slipway.services.errors import Conflict
from tests.fakes import BuildingRuntime, RecordingSender
from tests.unit.test_pipeline import (  # noqa: F401  (fixtures are used by name)
    STATIC,
    adapters,
    app,
    deploy,
    live,
    router,
    runtime,
    sent,
    session,
    settings,
    source,
    volumes,
)


def accept(session: Session, app: App, adapters: Adapters, settings: Settings) -> Deploy:
    body = source(STATIC)
    accepted = deploys.accept_tarball(session, app, body, None, settings, adapters.artifacts)
    session.commit()
    return accepted


def cancel_elsewhere(settings: Settings, adapters: Adapters, deploy_id: int) -> None:
    """Cancel from another connection, as the API process does while the worker runs."""
    engine = make_engine(settings)
    try:
        with make_session_factory(engine)() as other:
            found = other.get(Deploy, deploy_id)
            assert found is not None
            deploy_cancel.cancel_deploy(other, found, adapters, settings, by="alice")
    finally:
        engine.dispose()


def events_of(session: Session, app: App, kind: str) -> list[Event]:
    query = select(Event).where(Event.app_id == app.id, Event.type == kind)
    return list(session.scalars(query))


def test_a_queued_deploy_is_cancelled_at_once_and_never_built(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    queued = accept(session, app, adapters, settings)
    deploy_cancel.cancel_deploy(session, queued, adapters, settings, by="alice")
    session.refresh(queued)
    assert (queued.state, queued.error) == ("cancelled", "Cancelled by alice.")
    assert queued.finished_at is not None
    [event] = events_of(session, app, "deploy_cancelled")
    assert event.data == {"deploy_id": queued.id, "by": "alice", "state": "queued"}

    deploys.run_deploy(session, queued.id, adapters, settings)  # the task arrives later
    session.refresh(queued)
    assert queued.state == "cancelled" and runtime(adapters).builds == []
    assert "Deploy cancelled by alice while queued" in Path(queued.log_path).read_text()


def test_a_finished_deploy_cannot_be_cancelled(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    done = deploy(session, app, adapters, settings, STATIC)
    assert done.state == "succeeded"
    with pytest.raises(Conflict, match=r"already ended \(succeeded\)"):
        deploy_cancel.cancel_deploy(session, done, adapters, settings, by="alice")
    session.refresh(done)
    assert done.state == "succeeded" and events_of(session, app, "deploy_cancelled") == []


@dataclass
class CancelDuringBuild(BuildingRuntime):
    """A build that is cancelled while it runs and ends only when its container is stopped."""

    on_build: Callable[[], None] = lambda: None
    stopped_by_cancel: bool = False
    volumes_seen: list[str] = field(default_factory=list)

    def run_build(self, spec: BuildSpec, on_line: Callable[[str], None]) -> BuildResult:
        container = ContainerInfo("build" + "0" * 59, spec.name, "running", dict(spec.labels), None)
        self.containers[container.container_id] = container
        self.volumes_seen = [m.source.name for m in spec.mounts[:2]]
        self.on_build()
        deadline = time.monotonic() + 5
        while container.container_id in self.containers and time.monotonic() < deadline:
            time.sleep(0.05)  # the worker's heartbeat sees the cancel and stops the container
        self.stopped_by_cancel = container.container_id in self.stopped
        return BuildResult(exit_code=137, timed_out=False, duration=0.1)


def test_a_building_deploy_stops_its_build_and_removes_its_volumes(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    first = deploy(session, app, adapters, settings, STATIC)
    [old_web] = live(session, app)
    fake = CancelDuringBuild()
    adapters.runtime = fake
    second = accept(session, app, adapters, settings)
    fake.on_build = lambda: cancel_elsewhere(settings, adapters, second.id)

    deploys.run_deploy(session, second.id, adapters, settings)

    session.refresh(second)
    assert second.state == "cancelled" and second.error == "Cancelled by alice."
    assert fake.stopped_by_cancel, "the worker did not stop the build container"
    assert fake.volumes_seen and not set(fake.volumes_seen) & set(volumes(adapters).volumes)
    assert fake.list({LABEL_DEPLOY: str(second.id)}) == []
    session.refresh(app)
    assert app.current_release_id == first.release_id and second.release_id is None
    assert [i.id for i in live(session, app)] == [old_web.id]
    assert "was cancelled" in Path(second.log_path).read_text()
    assert events_of(session, app, "deploy_failed") == []
    with deploys.app_lock(settings, app.id, timeout=0):  # the lock was released
        pass


def test_a_starting_deploy_removes_its_new_instances_and_the_old_release_serves(
    session: Session,
    app: App,
    adapters: Adapters,
    settings: Settings,
    sent: RecordingSender,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = deploy(session, app, adapters, settings, STATIC)
    [old_web] = live(session, app)
    routes_before = router(adapters).routes
    second = accept(session, app, adapters, settings)
    fake = runtime(adapters)
    original = fake.wait_for_port
    cancelled: list[bool] = []

    def cancel_while_starting(port: int, timeout: float, path: str | None = None) -> bool:
        if port != old_web.host_port and not cancelled:
            cancel_elsewhere(settings, adapters, second.id)
            cancelled.append(True)
        return original(port, timeout, path)

    monkeypatch.setattr(fake, "wait_for_port", cancel_while_starting)
    deploys.run_deploy(session, second.id, adapters, settings)

    session.refresh(second)
    session.refresh(app)
    assert cancelled and second.state == "cancelled"
    assert app.current_release_id == first.release_id
    assert [i.id for i in instances.running_instances(session, app)] == [old_web.id]
    assert router(adapters).routes == routes_before
    assert set(fake.containers) == {old_web.container_id}
    assert set(volumes(adapters).volumes) == {old_web.volume_name}


def test_a_live_deploy_cannot_be_cancelled(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    done = deploy(session, app, adapters, settings, STATIC)
    done.state = "starting"  # switched, but its postdeploy still runs
    session.commit()
    with pytest.raises(Conflict, match="already live"):
        deploy_cancel.cancel_deploy(session, done, adapters, settings, by="alice")


def test_a_deploy_whose_worker_is_gone_is_cleaned_up_by_the_cancel(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    dead = accept(session, app, adapters, settings)
    dead.state = "building"
    dead.heartbeat_at = datetime.now(UTC) - timedelta(seconds=settings.deploy_stale_after + 5)
    session.commit()
    fake = runtime(adapters)
    labels = {
        **instances.platform_labels(settings),
        "io.slipway.kind": "build",
        LABEL_DEPLOY: str(dead.id),
    }
    fake.containers["b" * 64] = ContainerInfo("b" * 64, "slipway-build", "running", labels, None)
    for name in (f"build-{dead.id}-input", f"build-{dead.id}-output"):
        volumes(adapters).create(name, 1)

    deploy_cancel.cancel_deploy(session, dead, adapters, settings, by="alice")

    assert dead.state == "cancelled"
    assert "b" * 64 in fake.stopped and volumes(adapters).volumes == {}


def test_the_heartbeat_notices_a_cancel_once(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    queued = accept(session, app, adapters, settings)
    calls: list[int] = []
    engine = session.get_bind()
    beat = deploys.Heartbeat(engine, queued.id, 60, on_cancel=lambda: calls.append(1))  # type: ignore[arg-type]
    beat.beat()
    assert not beat.cancelled.is_set()
    queued.state = "cancelled"
    session.commit()
    beat.beat()
    beat.beat()
    assert beat.cancelled.is_set() and calls == [1]


def test_a_cancelled_deploy_is_never_moved_to_a_next_step(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    queued = accept(session, app, adapters, settings)
    queued.state = "cancelled"
    session.commit()
    for state in ("building", "releasing", "starting"):
        with pytest.raises(deploys.DeployCancelled):
            deploys._set_state(session, queued, state)
    session.refresh(queued)
    assert queued.state == "cancelled"


def test_a_cancel_whose_cleanup_fails_is_still_a_cancel(
    session: Session,
    app: App,
    adapters: Adapters,
    settings: Settings,
    sent: RecordingSender,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dead = accept(session, app, adapters, settings)

    def broken(name: str) -> None:
        raise OSError("the volume is busy")

    monkeypatch.setattr(volumes(adapters), "destroy", broken)
    deploy_cancel.cancel_deploy(session, dead, adapters, settings, by="alice")
    session.refresh(dead)
    assert dead.state == "cancelled"  # the reconciler removes what is left
