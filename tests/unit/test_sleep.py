"""Sleep and wake with fakes: idle detection, refusals, waking, failures, and the hooks in rolls,
scaling and the reconciler."""

# ruff: noqa: F811  # the fixtures imported from test_pipeline are requested by parameter name

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.adapters import Adapters
from slipway.config import Settings
from slipway.models import App, Event, Instance
from slipway.router.base import Route
from slipway.services import deploys, instances, reconciler, releases, sleep
from slipway.services.errors import Conflict, Invalid
from slipway.services.routing import routes_from_db
from tests.fakes import RecordingSender
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
    volumes,
)

WITH_WORKER = {**STATIC, "Procfile": "web: serve\nworker: work\n"}


def _deployed(
    session: Session, app: App, adapters: Adapters, settings: Settings, files: dict[str, str]
) -> None:
    done = deploy(session, app, adapters, settings, files)
    assert done.state == "succeeded", done.error


def _events(session: Session, app: App, kind: str) -> list[Event]:
    query = select(Event).where(Event.app_id == app.id, Event.type == kind).order_by(Event.id)
    return list(session.scalars(query))


def _rows(session: Session, app: App) -> list[Instance]:
    return list(session.scalars(select(Instance).where(Instance.app_id == app.id)))


def _route(adapters: Adapters, name: str = "hello") -> Route:
    [route] = [r for r in router(adapters).routes if r.app == name]
    return route


# ----------------------------------------------------------------------------- settings


def test_effective_sleep_after_is_the_apps_own_else_the_platforms(
    app: App, settings: Settings
) -> None:
    assert sleep.effective_sleep_after(app, settings) == 0  # the platform's default: never
    platform = settings.with_overrides(sleep_after=900)
    assert sleep.effective_sleep_after(app, platform) == 900
    app.sleep_after = 0
    assert sleep.effective_sleep_after(app, platform) == 0  # the app never sleeps
    app.sleep_after = 60
    assert sleep.effective_sleep_after(app, settings) == 60


# ----------------------------------------------------------------------------- idle


def test_an_idle_app_sleeps_and_a_recent_request_keeps_it_awake(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    _deployed(session, app, adapters, settings, STATIC)
    idle = settings.with_overrides(sleep_after=60)
    now = time.time()
    app.active_at = datetime.fromtimestamp(now - 600, UTC)
    session.commit()

    assert sleep.sleep_idle(session, adapters, idle, {"hello": now - 10}, now) == []
    assert live(session, app) and not app.sleeping
    assert sleep.sleep_idle(session, adapters, idle, {"hello": now - 61}, now) == ["hello"]

    session.refresh(app)
    assert app.sleeping and _rows(session, app) == []
    assert _route(adapters) == Route("hello", [], wakeable=True, sleeping=True)
    [slept] = _events(session, app, "app_slept")
    assert slept.message == "hello went to sleep: idle for 1m."
    assert sleep.sleep_idle(session, adapters, idle, {}, now + 1000) == []  # asleep already


def test_the_default_never_and_an_apps_never_keep_it_awake(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    _deployed(session, app, adapters, settings, STATIC)
    long_ago = time.time() - 86400
    app.active_at = datetime.fromtimestamp(long_ago, UTC)
    session.commit()
    now = time.time()

    assert sleep.sleep_idle(session, adapters, settings, {}, now) == []  # platform: never
    app.sleep_after = 0
    session.commit()
    platform_minute = settings.with_overrides(sleep_after=60)
    assert sleep.sleep_idle(session, adapters, platform_minute, {}, now) == []
    app.sleep_after = 30
    session.commit()
    assert sleep.sleep_idle(session, adapters, settings, {}, datetime.now(UTC)) == ["hello"]


def test_an_app_never_seen_active_starts_counting_now(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    _deployed(session, app, adapters, settings, STATIC)
    app.active_at = None
    app.sleep_after = 30
    session.commit()
    now = time.time()

    assert sleep.sleep_idle(session, adapters, settings, {}, now) == []
    session.refresh(app)
    assert app.active_at is not None and abs(app.active_at.timestamp() - now) < 1
    assert sleep.sleep_idle(session, adapters, settings, {}, now + 31) == ["hello"]


def test_apps_that_cannot_sleep_are_skipped_quietly(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    _deployed(session, app, adapters, settings, WITH_WORKER)
    app.formation = {"web": 1, "worker": 1}
    app.sleep_after = 30
    session.commit()
    deploy(session, app, adapters, settings, WITH_WORKER)  # the worker runs now
    app.active_at = datetime.now(UTC) - timedelta(hours=1)
    session.commit()

    with deploys.app_lock(settings, app.id, 0):  # a deploy holds the app
        assert sleep.sleep_idle(session, adapters, settings, {}, time.time()) == []
    assert sleep.sleep_idle(session, adapters, settings, {}, time.time()) == []  # the worker
    assert not app.sleeping and len(live(session, app)) == 2


# ----------------------------------------------------------------------------- put_to_sleep


def test_put_to_sleep_switches_the_router_before_any_instance_stops(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    _deployed(session, app, adapters, settings, STATIC)
    [web] = live(session, app)
    fake_router, fake_runtime = router(adapters), runtime(adapters)
    stopped_when_routed: list[int] = []
    apply = fake_router.apply

    def watching(routes: list[Route]) -> None:
        if any(r.sleeping for r in routes):
            stopped_when_routed.append(len(fake_runtime.stopped))
        apply(routes)

    fake_router.apply = watching  # type: ignore[method-assign]
    stopped_before = len(fake_runtime.stopped)
    sleep.put_to_sleep(session, adapters, settings, app, "requested")

    assert stopped_when_routed[0] == stopped_before  # routed away first, then stopped
    assert web.container_id in fake_runtime.stopped
    assert web.volume_name in volumes(adapters).destroyed
    assert app.sleeping and _rows(session, app) == []
    assert app.current_release is not None and app.formation == {"web": 1}  # kept
    [slept] = _events(session, app, "app_slept")
    assert slept.message == "hello went to sleep: requested." and slept.data == {
        "reason": "requested"
    }
    sleep.put_to_sleep(session, adapters, settings, app, "requested")  # asleep: nothing to do
    assert len(_events(session, app, "app_slept")) == 1


def test_put_to_sleep_refuses_clearly(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    with pytest.raises(Invalid, match="^hello has no release yet; there is nothing to put"):
        sleep.put_to_sleep(session, adapters, settings, app, "requested")

    app.formation = {"web": 1, "worker": 1}
    session.commit()
    _deployed(session, app, adapters, settings, WITH_WORKER)
    with pytest.raises(Invalid, match="^hello runs worker, which does not sleep: add it"):
        sleep.put_to_sleep(session, adapters, settings, app, "requested")
    assert not app.sleeping and len(live(session, app)) == 2

    with (
        deploys.app_lock(settings, app.id, 0),
        pytest.raises(Conflict, match=r"^A deploy of hello is running; it cannot sleep now\.$"),
    ):
        sleep.put_to_sleep(session, adapters, settings, app, "requested")

    app.sleep_types = "worker"
    session.commit()
    sleep.put_to_sleep(session, adapters, settings, app, "requested")
    assert app.sleeping and _rows(session, app) == []


def test_a_router_failure_leaves_the_app_awake(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    _deployed(session, app, adapters, settings, STATIC)

    def refuse(routes: list[Route]) -> None:
        raise RuntimeError("nginx said no")

    router(adapters).apply = refuse  # type: ignore[method-assign]
    with pytest.raises(instances.StartFailed, match="router could not be updated"):
        sleep.put_to_sleep(session, adapters, settings, app, "requested")
    session.refresh(app)
    assert not app.sleeping and len(live(session, app)) == 1
    assert _events(session, app, "app_slept") == []


# ----------------------------------------------------------------------------- wake


def test_wake_starts_a_sleeping_app_and_routes_to_it(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    app.formation = {"web": 2, "worker": 1}
    app.sleep_types = "worker"
    session.commit()
    _deployed(session, app, adapters, settings, WITH_WORKER)
    sleep.put_to_sleep(session, adapters, settings, app, "requested")
    app.active_at = None
    session.commit()

    ports = sleep.wake(session, adapters, settings, "hello")

    session.refresh(app)
    running = live(session, app)
    assert sorted(i.process_type for i in running) == ["web", "web", "worker"]
    assert ports == sorted(i.host_port for i in running if i.process_type == "web")  # type: ignore[type-var]
    assert not app.sleeping and app.active_at is not None
    assert _route(adapters) == Route("hello", ports, wakeable=True, sleeping=False)
    [woke] = _events(session, app, "app_woke")
    assert woke.message == "hello woke up: v1 runs again."
    assert sleep.wake(session, adapters, settings, "hello") == ports  # awake: the same ones
    assert len(_events(session, app, "app_woke")) == 1


def test_gone_instances_are_retired_and_started_anew(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    app.formation = {"web": 2}
    session.commit()
    _deployed(session, app, adapters, settings, STATIC)
    gone, stays = sorted(live(session, app), key=lambda i: i.index)
    gone_port, stays_port = gone.host_port, stays.host_port
    assert gone.container_id is not None
    runtime(adapters).containers.pop(gone.container_id)  # vanished under us

    assert sleep.wake(session, adapters, settings, "hello") == [stays_port]  # one still serves

    runtime(adapters).ports_live = False  # every port closed: start anew (the health gate too)
    with pytest.raises(sleep.WakeFailed, match="did not listen on \\$PORT"):
        sleep.wake(session, adapters, settings, "hello")
    runtime(adapters).ports_live = True
    session.expire_all()
    assert _rows(session, app) == []  # the gone ones retired, the failed new ones undone

    ports = sleep.wake(session, adapters, settings, "hello")
    assert len(ports) == 2 and gone_port not in ports and stays_port not in ports
    assert _events(session, app, "app_woke") == []  # it did not sleep: a restart, no wake


def test_a_failed_wake_records_wake_failed_and_undoes_what_it_started(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    app.formation = {"web": 1, "worker": 1}
    app.sleep_types = "worker"
    session.commit()
    _deployed(session, app, adapters, settings, WITH_WORKER)
    sleep.put_to_sleep(session, adapters, settings, app, "requested")
    runtime(adapters).dead_releases.add("1")
    containers_before = set(runtime(adapters).containers)

    with pytest.raises(sleep.WakeFailed) as failed:
        sleep.wake(session, adapters, settings, "hello")

    assert str(failed.value) == "The new release did not listen on $PORT within 1 seconds."
    session.refresh(app)
    assert app.sleeping and _rows(session, app) == []
    assert set(runtime(adapters).containers) == containers_before  # what it started is gone
    assert _route(adapters).sleeping
    [event] = _events(session, app, "wake_failed")
    assert event.message == f"hello could not be woken: {failed.value}"
    assert event.data == {"error": str(failed.value)}


def test_wake_says_clearly_why_it_cannot(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    with pytest.raises(sleep.WakeFailed, match="^No app named nope is deployed here.$"):
        sleep.wake(session, adapters, settings, "nope")
    with pytest.raises(sleep.WakeFailed, match="^hello has no release yet; deploy it first.$"):
        sleep.wake(session, adapters, settings, "hello")
    _deployed(session, app, adapters, settings, STATIC)
    app.formation = {"web": 0}
    session.commit()
    with pytest.raises(sleep.WakeFailed, match="web process scaled to 0"):
        sleep.wake(session, adapters, settings, "hello")
    app.formation = {"web": 1}
    session.commit()
    with (
        deploys.app_lock(settings, app.id, 0),
        pytest.raises(sleep.WakeFailed, match="^A deploy of hello was still running after 1 "),
    ):
        sleep.wake(session, adapters, settings, "hello")
    assert len(_events(session, app, "wake_failed")) == 3  # not for the unknown app


# ----------------------------------------------------------------------------- hooks


def test_a_deploy_or_a_config_change_wakes_a_sleeping_app(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    _deployed(session, app, adapters, settings, STATIC)
    sleep.put_to_sleep(session, adapters, settings, app, "requested")
    app.active_at = None
    session.commit()

    _deployed(session, app, adapters, settings, STATIC)
    assert not app.sleeping and app.active_at is not None and len(live(session, app)) == 1
    assert not _route(adapters).sleeping and _route(adapters).upstreams

    sleep.put_to_sleep(session, adapters, settings, app, "requested")
    release = releases.change_config(session, app, {"GREETING": "hi"})
    session.commit()
    assert release is not None
    deploys.run_roll(session, app.id, release.id, adapters, settings)
    session.refresh(app)
    assert not app.sleeping and [i.release.version for i in live(session, app)] == [3]


def test_scaling_a_sleeping_app_keeps_it_asleep_and_the_next_wake_starts_that_many(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    _deployed(session, app, adapters, settings, WITH_WORKER)
    sleep.put_to_sleep(session, adapters, settings, app, "requested")
    started = len(runtime(adapters).started)

    instances.scale(session, app, {"web": 3})
    session.commit()
    assert app.current_release_id is not None
    deploys.run_roll(session, app.id, app.current_release_id, adapters, settings)

    session.refresh(app)
    assert app.sleeping and _rows(session, app) == [] and app.formation["web"] == 3
    assert len(runtime(adapters).started) == started
    assert _route(adapters).sleeping
    assert len(sleep.wake(session, adapters, settings, "hello")) == 3


def test_scaling_a_sleeping_app_still_runs_its_types_that_do_not_sleep(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    _deployed(session, app, adapters, settings, WITH_WORKER)
    sleep.put_to_sleep(session, adapters, settings, app, "requested")

    instances.scale(session, app, {"worker": 1})
    session.commit()
    assert app.current_release_id is not None
    deploys.run_roll(session, app.id, app.current_release_id, adapters, settings)

    session.refresh(app)
    assert app.sleeping and [i.process_type for i in live(session, app)] == ["worker"]


def test_the_reconciler_never_restarts_a_sleeping_apps_sleeping_types(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    _deployed(session, app, adapters, settings, STATIC)
    [web] = live(session, app)
    gone_container = web.container_id
    assert gone_container is not None
    # What a sleep that could not remove the row leaves: a live row, its container gone.
    app.sleeping = True
    session.commit()
    runtime(adapters).containers.pop(gone_container)

    report = reconciler.reconcile(session, adapters, settings)

    assert report.restarted == []
    assert _route(adapters) == Route("hello", [], wakeable=True, sleeping=True)
    assert len(sleep.wake(session, adapters, settings, "hello")) == 1  # wake starts it anew
    assert gone_container not in {i.container_id for i in live(session, app)}


# ----------------------------------------------------------------------------- routes


def test_routes_say_which_apps_are_wakeable_and_sleeping(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    assert routes_from_db(session) == [Route("hello", [], wakeable=False, sleeping=False)]
    _deployed(session, app, adapters, settings, STATIC)
    [web] = live(session, app)
    assert web.host_port is not None
    assert routes_from_db(session) == [Route("hello", [web.host_port], wakeable=True)]
    app.sleeping = True
    session.commit()
    assert routes_from_db(session) == [Route("hello", [], wakeable=True, sleeping=True)]
    app.sleeping, app.formation = False, {"web": 0}
    session.commit()
    assert routes_from_db(session) == [Route("hello", [web.host_port], wakeable=False)]


def test_a_web_process_stopped_by_the_user_is_not_handed_to_the_wake_service(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    _deployed(session, app, adapters, settings, STATIC)
    [route] = routes_from_db(session)
    assert route.wakeable and route.upstreams
    [web] = live(session, app)
    web.state = "stopped"  # what ps:stop records
    session.flush()
    [route] = routes_from_db(session)
    assert not route.wakeable and route.upstreams == []  # the router's 503, no wake_failed
