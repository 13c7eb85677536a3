"""The reconciler with fakes: restarts, orphans, dead workers, and the router rewritten."""

# ruff: noqa: F811  # the fixtures imported from test_pipeline are requested by parameter name

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.adapters import Adapters
from slipway.config import Settings
from slipway.models import App, Deploy, Event
from slipway.runtime.base import InstanceSpec, Limits
from slipway.services import deploys, instances, reconciler
from slipway.services.builds import LABEL_DEPLOY
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


def _spec(name: str, labels: dict[str, str]) -> InstanceSpec:
    return InstanceSpec(
        image="x", name=name, mounts=[], env={}, limits=Limits(), port=5000, labels=labels
    )


def test_missing_and_exited_instances_are_restarted(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    app.formation = {"web": 2}
    session.commit()
    deploy(session, app, adapters, settings, STATIC)
    gone, exited = sorted(live(session, app), key=lambda i: i.index)
    gone_id, exited_id = gone.container_id, exited.container_id
    assert gone_id and exited_id
    runtime(adapters).containers.pop(gone_id)
    runtime(adapters).kill(exited_id)

    report = reconciler.reconcile(session, adapters, settings)
    assert sorted(report.restarted) == sorted([gone.container_name, exited.container_name])
    after = live(session, app)
    assert len(after) == 2 and {i.release.version for i in after} == {1}
    assert exited_id in runtime(adapters).stopped
    assert {i.container_id for i in after}.isdisjoint({gone_id, exited_id})
    assert router(adapters).routes[0].upstreams == sorted(i.host_port for i in after)  # type: ignore[type-var]
    assert reconciler.reconcile(session, adapters, settings).restarted == []


def test_orphan_containers_and_volumes_are_removed(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    deploy(session, app, adapters, settings, STATIC)
    [web] = live(session, app)
    fake = runtime(adapters)
    ours = instances.platform_labels(settings)
    orphan = {**ours, "io.slipway.kind": "instance", "io.slipway.instance": "999"}
    stray = fake.start_instance(_spec("slipway-hello-999", orphan))
    old_build = fake.start_instance(
        _spec("slipway-build-77", {**ours, "io.slipway.kind": "build", LABEL_DEPLOY: "77"})
    )
    oneoff = fake.start_instance(_spec("run-1", {**ours, "io.slipway.kind": "run"}))
    # Another platform on the same Docker engine (a test, a staging copy) is not ours to clean.
    theirs = {**orphan, "io.slipway.platform": "0123456789ab"}
    other = fake.start_instance(_spec("slipway-hello-999-elsewhere", theirs))
    for name in ("app-hello-999", "build-77-input", "someone-elses"):
        volumes(adapters).create(name, 1)

    report = reconciler.reconcile(session, adapters, settings)
    assert sorted(report.removed_containers) == ["slipway-build-77", "slipway-hello-999"]
    assert sorted(report.removed_volumes) == ["app-hello-999", "build-77-input"]
    assert set(fake.containers) == {web.container_id, oneoff.container_id, other.container_id}
    assert stray.container_id in fake.stopped and old_build.container_id in fake.stopped
    assert set(volumes(adapters).volumes) == {web.volume_name, "someone-elses"}


def test_a_deploy_whose_worker_died_is_failed_and_cleaned(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    body = source(STATIC)
    dead = deploys.accept_tarball(session, app, body, None, settings, adapters.artifacts)
    session.commit()
    # What a SIGKILLed worker leaves in mid-build: a state, an old heartbeat, a container, volumes.
    dead.state = "building"
    dead.heartbeat_at = datetime.now(UTC) - timedelta(seconds=settings.deploy_stale_after + 5)
    session.commit()
    fake = runtime(adapters)
    labels = {**instances.platform_labels(settings), "io.slipway.kind": "build"}
    build = fake.start_instance(_spec("slipway-build", {**labels, LABEL_DEPLOY: str(dead.id)}))
    volumes(adapters).create(f"build-{dead.id}-input", 1)
    volumes(adapters).create(f"build-{dead.id}-output", 1)
    fresh = deploys.accept_tarball(session, app, source(STATIC), None, settings, adapters.artifacts)
    fresh.heartbeat_at = datetime.now(UTC)
    session.commit()
    volumes(adapters).create(f"build-{fresh.id}-input", 1)

    report = reconciler.reconcile(session, adapters, settings)
    assert report.failed_deploys == [dead.id]
    session.refresh(dead)
    assert dead.state == "failed" and dead.finished_at is not None
    assert dead.error == reconciler.WORKER_DIED
    assert build.container_id in fake.stopped
    assert set(volumes(adapters).volumes) == {f"build-{fresh.id}-input"}  # the live deploy's
    assert "Deploy failed: The worker" in Path(dead.log_path).read_text()
    failed_events = session.scalars(
        select(Event).where(Event.app_id == app.id, Event.type == "deploy_failed")
    ).all()
    assert [e.data["deploy_id"] for e in failed_events] == [dead.id]  # webhooks hear of it
    session.refresh(fresh)
    assert fresh.state == "queued"


def test_apps_with_a_deploy_in_progress_are_left_alone(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    deploy(session, app, adapters, settings, STATIC)
    [web] = live(session, app)
    assert web.container_id
    runtime(adapters).containers.pop(web.container_id)
    with deploys.app_lock(settings, app.id, timeout=1):
        assert reconciler.reconcile(session, adapters, settings).restarted == []
    assert reconciler.reconcile(session, adapters, settings).restarted == [web.container_name]


def test_an_instance_that_does_not_come_back_is_marked_crashed(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    deploy(session, app, adapters, settings, STATIC)
    [web] = live(session, app)
    assert web.container_id
    runtime(adapters).containers.pop(web.container_id)
    runtime(adapters).ports_live = False
    reconciler.reconcile(session, adapters, settings)
    session.refresh(web)
    assert web.state == "crashed" and router(adapters).routes[0].upstreams == []
    runtime(adapters).ports_live = True  # supervisord got the app going again
    assert reconciler.reconcile(session, adapters, settings).restarted == []
    session.refresh(web)
    assert web.state == "live" and router(adapters).routes[0].upstreams == [web.host_port]


def test_a_queued_deploy_no_worker_starts_fails_with_a_clear_error(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    queued = deploys.accept_tarball(
        session, app, source(STATIC), None, settings, adapters.artifacts
    )
    session.commit()
    assert reconciler.reconcile(session, adapters, settings).failed_deploys == []
    queued.created_at = datetime.now(UTC) - timedelta(seconds=settings.deploy_start_timeout + 1)
    session.commit()
    assert reconciler.reconcile(session, adapters, settings).failed_deploys == [queued.id]
    session.refresh(queued)
    assert queued.state == "failed"
    assert queued.error == reconciler.not_started(settings)
    assert "No worker started this deploy within 300 seconds" in queued.error
    assert "slipway server status" in queued.error


def test_a_queued_deploy_waits_its_turn_while_the_workers_run_other_deploys(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    queued = deploys.accept_tarball(
        session, app, source(STATIC), None, settings, adapters.artifacts
    )
    running = deploys.accept_tarball(
        session, app, source(STATIC), None, settings, adapters.artifacts
    )
    queued.created_at = datetime.now(UTC) - timedelta(seconds=settings.deploy_start_timeout + 1)
    running.state, running.heartbeat_at = "building", datetime.now(UTC)
    session.commit()
    assert reconciler.reconcile(session, adapters, settings).failed_deploys == []
    queued.created_at = datetime.now(UTC) - timedelta(days=1)  # past the lock and build limits
    session.commit()
    assert reconciler.reconcile(session, adapters, settings).failed_deploys == [queued.id]
    assert session.get(Deploy, queued.id).error == reconciler.NEVER_PICKED  # type: ignore[union-attr]


def test_half_started_instances_left_by_a_dead_worker_are_removed(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    deploy(session, app, adapters, settings, STATIC)
    [web] = live(session, app)
    # A roll (config change) whose worker died while its new instance started: no deploy row.
    release = web.release
    half = instances.add_instance(session, app, release, "web", 2)
    instances.launch(session, adapters, settings, app, half)
    assert half.container_id
    half_container, half_volume = half.container_id, half.volume_name
    runtime(adapters).kill(half_container)  # its app crash-loops

    with deploys.app_lock(settings, app.id, timeout=1):  # a roll in progress owns it
        report = reconciler.reconcile(session, adapters, settings)
    assert report.removed_half_started == [] and half_container in runtime(adapters).containers

    report = reconciler.reconcile(session, adapters, settings)
    assert report.removed_half_started == [half.container_name]
    assert half_container in runtime(adapters).stopped
    assert half_volume not in volumes(adapters).volumes
    assert [i.id for i in instances.running_instances(session, app)] == [web.id]
    assert router(adapters).routes[0].upstreams == [web.host_port]


def republish(fake: BuildingRuntime, container_id: str, port: int) -> None:
    """What `docker restart` (or a dockerd restart) does: the same container, a new port."""
    fake.containers[container_id] = dataclasses.replace(
        fake.containers[container_id], host_port=port
    )


def test_a_restarted_container_on_a_new_port_is_followed_and_routed(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    deploy(session, app, adapters, settings, STATIC)
    [instance] = live(session, app)
    fake = runtime(adapters)
    assert instance.container_id
    # `docker restart`: the same container comes back on another free port, and the collector
    # saw it die, so the instance was marked crashed.
    republish(fake, instance.container_id, 40999)
    instance.state = "crashed"
    session.commit()

    assert reconciler.reconcile(session, adapters, settings).restarted == []

    [after] = live(session, app)
    assert (after.id, after.host_port, after.state) == (instance.id, 40999, "live")
    assert router(adapters).routes[0].upstreams == [40999]


def test_a_stopped_process_stays_stopped_when_docker_restarts_its_container(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    deploy(session, app, adapters, settings, STATIC)
    [instance] = live(session, app)
    fake = runtime(adapters)
    assert instance.container_id
    instance.state = "stopped"  # `slipway ps:stop`
    session.commit()
    assert reconciler.reconcile(session, adapters, settings).restarted == []
    assert fake.execs == []  # nothing happened to it: nothing to do

    # A host restart: Docker starts the container again, on a new port, and supervisord in it
    # starts the program again.
    republish(fake, instance.container_id, 41999)
    assert reconciler.reconcile(session, adapters, settings).restarted == []

    session.refresh(instance)
    assert (instance.state, instance.host_port) == ("stopped", 41999)
    [(container, command)] = fake.execs
    assert container == instance.container_id and command[-2:] == ["stop", "web"]
    assert router(adapters).routes[0].upstreams == []  # still out of the router
