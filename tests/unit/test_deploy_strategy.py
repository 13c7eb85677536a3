"""Deploy strategies with fakes: ``rolling`` starts the new instances first, ``stop-first`` stops
the old ones first (the router answers 503 meanwhile) and brings them back if the new ones fail;
the setting through the service and the CLI."""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.adapters import Adapters
from slipway.config import Settings
from slipway.models import App, Instance, Release
from slipway.models.app import ROLLING, STOP_FIRST
from slipway.services import apps, instances, users
from slipway.services.deploys import DeployCancelled
from slipway.services.errors import Invalid
from slipway.tasks import dispatch
from tests.fakes import (
    BuildingRuntime,
    FakeRouter,
    RecordingSender,
    fake_adapters,
    migrated_session,
)
from tests.unit import test_cli
from tests.unit.test_cli import FakeApi, run
from tests.unit.test_pipeline import deploy

api = test_cli.api  # the fake API the CLI talks to


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    data = tmp_path / "data"
    data.mkdir()
    return Settings(data_dir=data, drain_grace=0, start_timeout=1)


@pytest.fixture
def session(settings: Settings) -> Iterator[Session]:
    with migrated_session(settings) as session:
        yield session


@pytest.fixture
def adapters(tmp_path: Path) -> Adapters:
    adapters = fake_adapters(tmp_path)
    adapters.runtime = BuildingRuntime()
    return adapters


@pytest.fixture
def slug(tmp_path: Path) -> Path:
    """A slug with one file, as a build leaves it."""
    path = tmp_path / "slug.tgz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("index.html")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    return path


@pytest.fixture
def app(session: Session, settings: Settings, slug: Path) -> App:
    owner = users.create_user(session, "alice")
    app = apps.create_app(session, owner, "hello", settings)
    app.config = {"SLUG": str(slug)}  # where release() finds it
    session.commit()
    return app


def release(session: Session, app: App, version: int) -> Release:
    made = Release(
        app=app,
        version=version,
        slug_path=app.config["SLUG"],
        stack="static",
        config={},
        process_types={"web": "serve"},
        description=f"v{version}",
    )
    session.add(made)
    session.commit()
    return made


def running(session: Session, app: App) -> list[tuple[int, str]]:
    """(release version, state) of every instance row."""
    rows = session.scalars(select(Instance).where(Instance.app_id == app.id)).all()
    return sorted((i.release.version, i.state) for i in rows)


def upstreams(adapters: Adapters) -> list[list[int]]:
    """The web ports of the app at each router change, in order."""
    assert isinstance(adapters.router, FakeRouter)
    return [
        [port for route in routes for port in route.upstreams] for routes in adapters.router.applied
    ]


def runtime(adapters: Adapters) -> BuildingRuntime:
    assert isinstance(adapters.runtime, BuildingRuntime)
    return adapters.runtime


def roll(
    session: Session, adapters: Adapters, settings: Settings, app: App, to: Release
) -> list[str]:
    lines: list[str] = []
    instances.roll(session, adapters, settings, app, to, lines.append)
    return lines


# ----------------------------------------------------------------------------- the strategies


def test_rolling_starts_the_new_instance_before_the_old_one_stops(
    session: Session, adapters: Adapters, settings: Settings, app: App
) -> None:
    roll(session, adapters, settings, app, release(session, app, 1))
    roll(session, adapters, settings, app, release(session, app, 2))
    # The router went from v1's port straight to v2's: never without an instance.
    assert upstreams(adapters) == [[20001], [20002]]
    assert running(session, app) == [(2, "live")]


def test_stop_first_stops_the_old_instance_and_the_router_answers_503_meanwhile(
    session: Session, adapters: Adapters, settings: Settings, app: App
) -> None:
    roll(session, adapters, settings, app, release(session, app, 1))
    app.deploy_strategy = STOP_FIRST
    session.commit()
    old_container = runtime(adapters).started[0].name
    lines = roll(session, adapters, settings, app, release(session, app, 2))
    assert upstreams(adapters) == [[20001], [], [20002]]  # [] : no upstream, the router says 503
    assert old_container not in {c.name for c in runtime(adapters).containers.values()}
    assert running(session, app) == [(2, "live")]
    assert any("stop-first" in line for line in lines)


def test_a_failed_stop_first_roll_brings_the_previous_release_back(
    session: Session, adapters: Adapters, settings: Settings, app: App
) -> None:
    roll(session, adapters, settings, app, release(session, app, 1))
    app.deploy_strategy = STOP_FIRST
    session.commit()
    runtime(adapters).dead_releases.add("2")
    with pytest.raises(instances.StartFailed, match="The previous release v1 runs again"):
        roll(session, adapters, settings, app, release(session, app, 2))
    session.refresh(app)
    assert app.current_release is not None and app.current_release.version == 1
    assert running(session, app) == [(1, "live")]
    assert (
        upstreams(adapters)[-1]
        == [port for port, v in runtime(adapters).port_release.items() if v == "1"][-1:]
    )


def test_a_failed_stop_first_roll_that_cannot_bring_back_says_the_app_is_down(
    session: Session, adapters: Adapters, settings: Settings, app: App
) -> None:
    roll(session, adapters, settings, app, release(session, app, 1))
    app.deploy_strategy = STOP_FIRST
    session.commit()
    runtime(adapters).dead_releases.update({"1", "2"})
    with pytest.raises(instances.StartFailed, match="the app is down until a deploy"):
        roll(session, adapters, settings, app, release(session, app, 2))
    assert running(session, app) == []
    assert upstreams(adapters)[-1] == []


def test_a_cancelled_stop_first_roll_stays_cancelled_and_the_old_release_returns(
    session: Session, adapters: Adapters, settings: Settings, app: App
) -> None:
    roll(session, adapters, settings, app, release(session, app, 1))
    app.deploy_strategy = STOP_FIRST
    session.commit()

    def cancelled() -> None:
        raise DeployCancelled("Deploy 7 was cancelled.")  # passes through unchanged

    with pytest.raises(DeployCancelled, match="^Deploy 7 was cancelled.$"):
        instances.roll(session, adapters, settings, app, release(session, app, 2), print, cancelled)
    assert running(session, app) == [(1, "live")]


def test_the_first_deploy_of_a_stop_first_app_has_nothing_to_stop(
    session: Session, adapters: Adapters, settings: Settings, app: App
) -> None:
    app.deploy_strategy = STOP_FIRST
    session.commit()
    lines = roll(session, adapters, settings, app, release(session, app, 1))
    assert upstreams(adapters) == [[20001]]
    assert not any("stop-first" in line for line in lines)


# ----------------------------------------------------------------------------- the setting


def test_the_strategy_is_a_setting_shown_with_the_app(
    session: Session, adapters: Adapters, settings: Settings, app: App
) -> None:
    assert apps.app_view(session, app, settings)["deploy_strategy"] == ROLLING
    apps.update_app(session, app, {"deploy_strategy": "stop-first"}, adapters, settings)
    assert apps.app_view(session, app, settings)["deploy_strategy"] == STOP_FIRST
    with pytest.raises(Invalid, match="deploy_strategy is rolling or stop-first, not 'blue-green'"):
        apps.update_app(session, app, {"deploy_strategy": "blue-green"}, adapters, settings)


def test_cli_apps_update_sends_the_strategy(api: FakeApi) -> None:
    view = {"name": "hello", "deploy_strategy": "stop-first"}
    api.on("PATCH", "/apps/hello", lambda seen: (200, view))
    result = run("apps:update", "-a", "hello", "--deploy-strategy", "stop-first")
    assert result.exit_code == 0, result.output
    assert api.last("PATCH", "/apps/hello").json() == {"deploy_strategy": "stop-first"}
    assert "stop-first" in result.output
    assert run("apps:update", "-a", "hello", "--deploy-strategy", "nope").exit_code == 2


# ----------------------------------------------------------------------------- app.json


@contextlib.contextmanager
def recording_sender() -> Iterator[RecordingSender]:
    sender = RecordingSender()
    previous = dispatch.set_sender(sender)
    try:
        yield sender
    finally:
        dispatch.set_sender(previous)


def site(strategy: object) -> dict[str, str]:
    return {"index.html": "<h1>hi</h1>", "app.json": json.dumps({"deploy_strategy": strategy})}


def test_app_json_sets_the_strategy_on_the_first_deploy_only(
    session: Session, adapters: Adapters, settings: Settings, app: App
) -> None:
    with recording_sender():
        first = deploy(session, app, adapters, settings, site("stop-first"))
        assert first.state == "succeeded", first.error
        session.refresh(app)
        assert app.deploy_strategy == STOP_FIRST
        second = deploy(session, app, adapters, settings, site("rolling"))
        assert second.state == "succeeded", second.error
        session.refresh(app)
        assert app.deploy_strategy == STOP_FIRST  # apps:update decides after the first deploy
        log = Path(second.log_path or "").read_text()
        assert "deploy strategy stop-first" in log  # the second deploy stopped v1 first
        assert "app.json asks for the deploy strategy rolling; the app keeps stop-first" in log
        bad = deploy(session, app, adapters, settings, site("blue-green"))
    assert bad.state == "failed"
    assert bad.error == ("app.json \"deploy_strategy\" is rolling or stop-first, not 'blue-green'.")
