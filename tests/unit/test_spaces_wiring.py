"""Spaces reach every container of an app (instances, the release phase, one-off runs), and
app.json "spaces" makes and attaches ``<app>-<slot>`` on a deploy; with fakes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from slipway.adapters import Adapters
from slipway.config import Settings
from slipway.models import App
from slipway.runtime.base import Mount
from slipway.services import apps, instances, oneoff, reconciler, spaces, users
from slipway.tasks import dispatch
from tests.fakes import BuildingRuntime, FakeSpaces, RecordingSender, fake_adapters
from tests.fakes import migrated_session as migrated
from tests.unit.test_pipeline import deploy

M = 1024**2
APP_JSON = {"spaces": {"data": {"size": "64M"}, "cache": {"process_types": ["worker"]}}}
SOURCE = {
    "index.html": "<h1>hello</h1>",
    "Procfile": "web: serve\nworker: work\nrelease: migrate\n",
    "app.json": json.dumps(APP_JSON),
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    data = tmp_path / "data"
    data.mkdir()
    return Settings(data_dir=data, drain_grace=0, start_timeout=1, deploy_lock_timeout=2)


@pytest.fixture
def session(settings: Settings) -> Iterator[Session]:
    with migrated(settings) as session:
        yield session


@pytest.fixture(autouse=True)
def sent() -> Iterator[RecordingSender]:
    sender = RecordingSender()
    previous = dispatch.set_sender(sender)
    yield sender
    dispatch.set_sender(previous)


@pytest.fixture
def adapters(tmp_path: Path) -> Adapters:
    adapters = fake_adapters(tmp_path)
    adapters.runtime = BuildingRuntime()
    return adapters


@pytest.fixture
def app(session: Session, settings: Settings) -> App:
    owner = users.create_user(session, "alice")
    app = apps.create_app(session, owner, "hello", settings)
    app.formation = {"web": 1, "worker": 1}
    session.commit()
    return app


def runtime(adapters: Adapters) -> BuildingRuntime:
    assert isinstance(adapters.runtime, BuildingRuntime)
    return adapters.runtime


def space_targets(mounts: list[Mount]) -> list[str]:
    return sorted(m.target for m in mounts if m.target.startswith("/spaces/"))


def test_app_json_spaces_are_made_attached_and_mounted_everywhere(
    session: Session, adapters: Adapters, settings: Settings, app: App
) -> None:
    done = deploy(session, app, adapters, settings, SOURCE)
    assert done.state == "succeeded", done.error
    attached = {a.slot: a for a in spaces.attachments_of(session, app)}
    assert {slot: a.space.name for slot, a in attached.items()} == {
        "cache": "hello-cache",
        "data": "hello-data",
    }
    assert attached["data"].space.size == 64 * M
    assert attached["cache"].space.size == settings.space_default_size
    assert attached["cache"].process_types == ["worker"]
    assert attached["data"].space.owner_id == app.owner_id
    # The release phase mounts every space; web only data; the worker both.
    (phase,) = [b for b in runtime(adapters).builds if b.command == ["start", "release"]]
    assert space_targets(phase.mounts) == ["/spaces/cache/tree", "/spaces/data/tree"]
    started = {s.labels["io.slipway.process"]: s for s in runtime(adapters).started}
    assert space_targets(started["web"].mounts) == ["/spaces/data/tree"]
    assert space_targets(started["worker"].mounts) == ["/spaces/cache/tree", "/spaces/data/tree"]
    tree = next(m.source for m in started["web"].mounts if m.target == "/spaces/data/tree")
    assert tree == adapters.spaces.tree(attached["data"].space.key)
    # A one-off run mounts every space too.
    session.refresh(app)
    plan = oneoff.plan_run(session, adapters, app, "ls /spaces")
    spec = oneoff.run_spec(settings, plan, settings.data_dir)
    assert space_targets(spec.mounts) == ["/spaces/cache/tree", "/spaces/data/tree"]


def test_a_redeploy_keeps_the_attachments_app_json_never_changes_them(
    session: Session, adapters: Adapters, settings: Settings, app: App
) -> None:
    assert deploy(session, app, adapters, settings, SOURCE).state == "succeeded"
    first = {a.slot: a.space_id for a in spaces.attachments_of(session, app)}
    changed = dict(SOURCE, **{"app.json": json.dumps({"spaces": {"data": {"size": "128M"}}})})
    done = deploy(session, app, adapters, settings, changed)
    assert done.state == "succeeded", done.error
    assert {a.slot: a.space_id for a in spaces.attachments_of(session, app)} == first
    assert all(a.space.size != 128 * M for a in spaces.attachments_of(session, app))


def test_an_unattached_space_of_that_name_and_owner_is_used(
    session: Session, adapters: Adapters, settings: Settings, app: App
) -> None:
    existing = spaces.create_space(session, adapters, app.owner, "hello-data", 40 * M)
    only_data = dict(SOURCE, **{"app.json": json.dumps({"spaces": {"data": {}}})})
    done = deploy(session, app, adapters, settings, only_data)
    assert done.state == "succeeded", done.error
    (attachment,) = spaces.attachments_of(session, app)
    assert attachment.space_id == existing.id


def test_a_space_of_that_name_of_another_user_fails_the_deploy_before_anything_starts(
    session: Session, adapters: Adapters, settings: Settings, app: App
) -> None:
    bob = users.create_user(session, "bob")
    spaces.create_space(session, adapters, bob, "hello-data", 40 * M)
    done = deploy(session, app, adapters, settings, SOURCE)
    assert done.state == "failed"
    assert done.error == (
        'app.json "spaces.data": a space named hello-data exists already and belongs to another '
        "user; attach another space to the slot with spaces:attach."
    )
    assert runtime(adapters).started == []
    assert not any(b.command == ["start", "release"] for b in runtime(adapters).builds)


def test_bad_app_json_spaces_fail_the_deploy_in_one_sentence(
    session: Session, adapters: Adapters, settings: Settings, app: App
) -> None:
    bad = dict(SOURCE, **{"app.json": json.dumps({"spaces": {"data": {"size": "1K"}}})})
    done = deploy(session, app, adapters, settings, bad)
    assert done.state == "failed"
    assert done.error == (
        "app.json \"spaces.data\": A space's size is at least 32M, such as 512M or 1G, not '1K'."
    )
    assert spaces.attachments_of(session, app) == []
    assert runtime(adapters).started == []


def test_a_space_that_is_not_mounted_fails_the_start_and_the_old_release_serves(
    session: Session, adapters: Adapters, settings: Settings, app: App
) -> None:
    assert deploy(session, app, adapters, settings, SOURCE).state == "succeeded"
    provider = adapters.space_provider
    assert isinstance(provider, FakeSpaces)
    data = next(a.space for a in spaces.attachments_of(session, app) if a.slot == "data")
    tree = provider.tree(data.key)
    tree.rename(tree.with_name("unmounted"))
    done = deploy(session, app, adapters, settings, SOURCE)
    assert done.state == "failed"
    assert done.error == (
        f"The space hello-data is not available for slot data: space {data.key} is not mounted."
    )
    session.refresh(app)
    assert app.current_release is not None and app.current_release.version == 1
    with pytest.raises(spaces.SpaceFailed, match="hello-data"):
        oneoff.plan_run(session, adapters, app, "true")


def test_reconciler_restarts_and_scaling_mount_the_spaces_too(
    session: Session, adapters: Adapters, settings: Settings, app: App
) -> None:
    assert deploy(session, app, adapters, settings, SOURCE).state == "succeeded"
    web = next(s for s in runtime(adapters).started if s.labels["io.slipway.process"] == "web")
    container = next(c for c in runtime(adapters).containers.values() if c.name == web.name)
    runtime(adapters).kill(container.container_id)  # exited, as after a crash
    reconciler.restart_missing(session, adapters, settings)
    instances.scale(session, app, {"web": 2})
    session.commit()
    instances.scale_to_formation(session, adapters, settings, app, print)
    restarted, scaled = runtime(adapters).started[-2:]
    assert restarted.name == web.name
    assert scaled.labels["io.slipway.process"] == "web" and scaled.name != web.name
    for spec in (restarted, scaled):
        assert space_targets(spec.mounts) == ["/spaces/data/tree"]
