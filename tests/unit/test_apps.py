"""Apps (names, ownership, the view, delete), config var changes, and enqueue-after-commit."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.adapters import Adapters
from slipway.config import Settings
from slipway.models import App, Instance, Release, User
from slipway.runtime.base import LABEL_APP, InstanceSpec, Limits
from slipway.services import apps, config_vars, users
from slipway.services.errors import Conflict, Invalid, NotFound
from slipway.services.instances import platform_labels
from slipway.tasks import dispatch
from tests.fakes import (
    FakeRouter,
    FakeRuntime,
    FakeVolumes,
    RecordingSender,
    fake_adapters,
    migrated_session,
)


@pytest.fixture
def session(settings: Settings) -> Iterator[Session]:
    with migrated_session(settings) as session:
        yield session


@pytest.fixture
def sender() -> Iterator[RecordingSender]:
    recorder = RecordingSender()
    previous = dispatch.set_sender(recorder)
    yield recorder
    dispatch.set_sender(previous)


@pytest.fixture
def adapters(tmp_path: Path) -> Adapters:
    return fake_adapters(tmp_path / "adapters")


def owner(session: Session, name: str = "alice", admin: bool = False) -> User:
    return users.create_user(session, name, is_admin=admin)


def run_instance(
    session: Session, adapters: Adapters, app: App, settings: Settings, version: int = 1
) -> Instance:
    """A release and a live instance whose container runs in the fake runtime."""
    release = Release(app=app, version=version, slug_path="/slug.tgz", stack="static")
    app.current_release = release
    name = f"{app.name}-web-{version}"
    running = adapters.runtime.start_instance(
        InstanceSpec(
            "img",
            name,
            [],
            {},
            Limits(),
            5000,
            labels={**platform_labels(settings), LABEL_APP: app.name},
        )
    )
    adapters.volumes.create(name, 1024)
    instance = Instance(
        app=app,
        release=release,
        container_id=running.container_id,
        container_name=name,
        volume_name=name,
        host_port=running.host_port,
        state="live",
    )
    session.add(instance)
    session.flush()
    return instance


@pytest.mark.parametrize("name", ["a", "hello", "my-app-2", "x" * 63])
def test_dns_labels_are_valid_app_names(session: Session, settings: Settings, name: str) -> None:
    assert apps.create_app(session, owner(session), name, settings).name == name


@pytest.mark.parametrize(
    "name", ["", "Hello", "2fast", "-x", "x-", "a_b", "a.b", "héllo", "x" * 64, None, 42]
)
def test_other_names_are_refused_with_a_clear_sentence(
    session: Session, settings: Settings, name: object
) -> None:
    with pytest.raises(Invalid, match="not a valid app name. An app name is a DNS label"):
        apps.create_app(session, owner(session), name, settings)


def test_a_taken_name_is_a_conflict(session: Session, settings: Settings) -> None:
    apps.create_app(session, owner(session), "hello", settings)
    with pytest.raises(Conflict, match="already exists"):
        apps.create_app(session, owner(session, "bob"), "hello", settings)


def test_a_new_app_gets_the_default_memory(session: Session, settings: Settings) -> None:
    small = settings.with_overrides(default_memory=128 * 1024**2)
    assert apps.create_app(session, owner(session), "hello", small).memory == 128 * 1024**2


def test_users_see_their_own_apps_and_the_admin_sees_all(
    session: Session, settings: Settings
) -> None:
    alice, bob = owner(session, "alice"), owner(session, "bob")
    admin = owner(session, "root", admin=True)
    apps.create_app(session, alice, "alices", settings)
    apps.create_app(session, bob, "bobs", settings)

    assert [a.name for a in apps.list_apps(session, alice)] == ["alices"]
    assert [a.name for a in apps.list_apps(session, admin)] == ["alices", "bobs"]
    assert apps.get_app(session, admin, "bobs").name == "bobs"
    with pytest.raises(NotFound, match="no app named 'bobs'"):
        apps.get_app(session, alice, "bobs")
    with pytest.raises(NotFound):
        apps.get_app(session, alice, "missing")


def test_the_view_shows_url_state_release_and_instances(
    session: Session, settings: Settings, adapters: Adapters
) -> None:
    app = apps.create_app(session, owner(session), "hello", settings)
    assert apps.app_view(session, app, settings)["state"] == "new"
    instance = run_instance(session, adapters, app, settings)

    view = apps.app_view(session, app, settings.with_overrides(router_bind="127.0.0.1:8080"))
    assert view["url"] == "http://hello.localhost:8080"
    assert view["state"] == "running"
    assert view["release"]["version"] == 1
    assert view["instances"] == [
        {
            "process_type": "web",
            "index": 1,
            "state": "live",
            "port": instance.host_port,
            "container": "hello-web-1",
            "release": 1,
        }
    ]
    assert apps.app_url(settings, "hello") == "http://hello.localhost"


def test_deleting_an_app_stops_containers_frees_volumes_and_drops_the_route(
    session: Session, settings: Settings, adapters: Adapters
) -> None:
    app = apps.create_app(session, owner(session), "hello", settings)
    other = apps.create_app(session, owner(session, "bob"), "other", settings)
    instance = run_instance(session, adapters, app, settings)
    run_instance(session, adapters, other, settings)

    apps.delete_app(session, app, adapters, settings)
    session.commit()

    runtime, volumes, router = adapters.runtime, adapters.volumes, adapters.router
    assert isinstance(runtime, FakeRuntime) and isinstance(volumes, FakeVolumes)
    assert isinstance(router, FakeRouter)
    assert runtime.stopped == [instance.container_id]
    assert volumes.destroyed == ["hello-web-1"]
    assert [route.app for route in router.routes] == ["other"]
    assert session.scalars(select(App.name)).all() == ["other"]


def test_config_changes_are_checked_and_applied() -> None:
    changes = config_vars.validate_changes({"A": "1", "B": None})
    assert config_vars.apply_changes({"B": "old", "C": "3"}, changes) == {"A": "1", "C": "3"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ([], "JSON object"),
        ({}, "JSON object"),
        ({"1A": "x"}, "not a valid config var name"),
        ({"A": 1}, "must be a string"),
        ({"PORT": "80"}, "set by the platform"),
        ({"SLIPWAY_APP": "x"}, "set by the platform"),
    ],
)
def test_bad_config_changes_are_refused(changes: object, message: str) -> None:
    with pytest.raises(Invalid, match=message):
        config_vars.validate_changes(changes)


def test_tasks_are_sent_only_after_the_commit(
    session: Session, settings: Settings, sender: RecordingSender
) -> None:
    apps.create_app(session, owner(session), "hello", settings)
    dispatch.enqueue_after_commit(session, "slipway.deploy", 7)
    assert sender.sent == []
    assert dispatch.pending_tasks(session) == [("slipway.deploy", (7,))]
    session.commit()
    assert sender.sent == [("slipway.deploy", (7,))]
    session.commit()  # a later commit does not send it again
    assert len(sender.sent) == 1


def test_tasks_of_a_rolled_back_transaction_are_never_sent(
    session: Session, settings: Settings, sender: RecordingSender
) -> None:
    apps.create_app(session, owner(session), "hello", settings)
    dispatch.enqueue_after_commit(session, "slipway.deploy", 7)
    session.rollback()
    session.commit()
    assert sender.sent == []


def test_a_name_taken_between_the_check_and_the_insert_is_a_conflict(
    session: Session, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    apps.create_app(session, owner(session), "hello", settings)
    session.commit()
    # Another request wins the race: the existence check sees nothing, the insert collides.
    monkeypatch.setattr(session, "scalar", lambda *_a, **_k: None)
    with pytest.raises(Conflict, match="already exists"):
        apps.create_app(session, owner(session, "bob"), "hello", settings)
    session.rollback()
    monkeypatch.undo()
    assert [a.name for a in apps.list_apps(session, owner(session, "root", admin=True))] == [
        "hello"
    ]


# ------------------------------------------------------------------------ what goes with an app


def plant_app_files(settings: Settings, app: App, adapters: Adapters, outside: Path) -> list[Path]:
    """Files of every kind an app leaves on the host, the cache with links pointing outside."""
    from slipway.models import Deploy
    from slipway.services import logs
    from slipway.services.deploys import log_dir

    cache = settings.cache_dir / app.name
    (cache / "venv" / "site-packages").mkdir(parents=True)
    (cache / "venv" / "site-packages" / "evil.pth").write_text("import os\n")
    (cache / "to-outside").symlink_to(outside)
    (cache / "venv" / "to-outside-file").symlink_to(outside / "keep.txt")
    repo = settings.git_dir / f"{app.name}.git"
    (repo / "objects").mkdir(parents=True)
    (repo / "HEAD").write_text("ref: refs/heads/main\n")
    kept = settings.old_logs_dir / logs.app_key(app) / "1-web.1-v1-1" / "log"
    kept.mkdir(parents=True)
    (kept / "app.log").write_text("old line\n")
    deploy_log = log_dir(settings) / "41.log"
    deploy_log.parent.mkdir(parents=True, exist_ok=True)
    deploy_log.write_text("-----> Building\n")
    source = adapters.artifacts.save_source(app.name, io.BytesIO(b"tgz"), 100)
    app.deploys.append(
        Deploy(
            state="failed", source_kind="tarball", source_path=str(source), log_path=str(deploy_log)
        )
    )
    slug = adapters.artifacts.new_slug_path(app.name)
    slug.write_bytes(b"slug")
    return [cache, repo, kept.parent.parent, deploy_log, slug, source]


def test_deleting_an_app_removes_its_cache_repository_logs_and_artifacts(
    session: Session, settings: Settings, adapters: Adapters, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("not the app's")
    app = apps.create_app(session, owner(session), "hello", settings)
    planted = plant_app_files(settings, app, adapters, outside)
    session.flush()

    apps.delete_app(session, app, adapters, settings)
    session.commit()

    assert [p for p in planted if p.exists() or p.is_symlink()] == []
    assert (outside / "keep.txt").read_text() == "not the app's"  # links were not followed


def test_a_new_app_with_a_freed_name_starts_without_leftover_files(
    session: Session, settings: Settings
) -> None:
    # A removal cut short (the platform died half-way) left the cache and repository behind.
    (settings.cache_dir / "hello" / "venv").mkdir(parents=True)
    (settings.cache_dir / "hello" / "venv" / "evil.pth").write_text("import os\n")
    (settings.git_dir / "hello.git").mkdir(parents=True)

    apps.create_app(session, owner(session, "bob"), "hello", settings)

    assert not (settings.cache_dir / "hello").exists()
    assert not (settings.git_dir / "hello.git").exists()


def test_deleting_an_app_whose_deploy_keeps_running_is_a_conflict(
    session: Session, settings: Settings, adapters: Adapters, monkeypatch: pytest.MonkeyPatch
) -> None:
    from slipway.services.deploys import app_lock

    app = apps.create_app(session, owner(session), "hello", settings)
    session.commit()
    monkeypatch.setattr(apps, "DESTROY_WAIT", 0.5)
    monkeypatch.setattr(apps, "LOCK_POLL", 0.2)
    with app_lock(settings, app.id, 1), pytest.raises(Conflict, match="still running"):
        apps.delete_app(session, app, adapters, settings)
    session.rollback()
    assert session.scalars(select(App.name)).all() == ["hello"]


def test_deleting_an_app_frees_the_build_volumes_of_a_deploy_whose_worker_died(
    session: Session, settings: Settings, adapters: Adapters
) -> None:
    from slipway.models import Deploy

    app = apps.create_app(session, owner(session), "hello", settings)
    stuck = Deploy(app=app, state="building", source_kind="tarball", source_path="/x.tgz")
    session.add(stuck)
    session.flush()
    for name in (f"build-{stuck.id}-input", f"build-{stuck.id}-output"):
        adapters.volumes.create(name, 1024)

    apps.delete_app(session, app, adapters, settings)

    volumes = adapters.volumes
    assert isinstance(volumes, FakeVolumes)
    assert volumes.list() == []


def test_deleting_an_app_whose_build_container_is_being_removed_still_succeeds(
    session: Session, settings: Settings, adapters: Adapters, monkeypatch: pytest.MonkeyPatch
) -> None:
    from slipway.runtime.base import ContainerError

    app = apps.create_app(session, owner(session), "hello", settings)
    run_instance(session, adapters, app, settings)

    def busy(container_id: str) -> None:
        raise ContainerError("Docker refused to stop it: removal is already in progress.")

    monkeypatch.setattr(adapters.runtime, "stop", busy)
    apps.delete_app(session, app, adapters, settings)
    session.commit()
    assert session.scalars(select(App.name)).all() == []
