"""apps:fork and app deletion with spaces, with fakes: what a fork copies, forks and rolls, what a
refused or failed fork leaves (nothing), and which spaces a destroyed app keeps."""

# ruff: noqa: F811  # the fixtures imported from test_pipeline are requested by parameter name

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.adapters import Adapters
from slipway.config import Settings
from slipway.models import App, Release, Space, SpaceAttachment, User
from slipway.services import app_fork, apps, deploys, spaces, users
from slipway.services.errors import Conflict, Invalid, NotFound
from tests.fakes import FakeSpaces, RecordingSender
from tests.unit.test_pipeline import (  # noqa: F401  (fixtures are used by name)
    STATIC,
    adapters,
    app,
    deploy,
    live,
    sent,
    session,
    settings,
)

MB = 1024**2


@pytest.fixture(autouse=True)
def recorded_tasks(sent: RecordingSender) -> RecordingSender:
    """Tasks are recorded, never sent to a broker."""
    return sent


def owner(app: App) -> User:
    return app.owner


def with_space(session: Session, adapters: Adapters, app: App, slot: str, data: str) -> Space:
    name = app_fork.fork_space_name(app.name, slot)
    space = spaces.create_space(session, adapters, app.owner, name, 64 * MB)
    spaces.attach_space(session, space, app, slot, ["web"] if slot == "data" else None)
    (adapters.spaces.tree(space.key) / "note.txt").write_text(data)
    session.commit()
    return space


def deployed(session: Session, app: App, adapters: Adapters, settings: Settings) -> App:
    assert deploy(session, app, adapters, settings, STATIC).state == "succeeded"
    app.config = {"GREETING": "hi"}
    app.formation = {"web": 2}
    app.memory = 256 * MB
    app.health_check_path = "/health"
    app.deploy_strategy = "stop-first"
    session.commit()
    session.refresh(app)
    return app


def fakes(adapters: Adapters) -> FakeSpaces:
    assert isinstance(adapters.space_provider, FakeSpaces)
    return adapters.space_provider


def app_named(session: Session, name: str) -> App | None:
    return session.scalar(select(App).where(App.name == name))


def space_named(session: Session, name: str) -> Space | None:
    return session.scalar(select(Space).where(Space.name == name))


# ----------------------------------------------------------------------------- forking


def test_a_fork_copies_the_release_and_settings_and_forks_the_spaces(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    deployed(session, app, adapters, settings)
    data = with_space(session, adapters, app, "data", "from the source")
    with_space(session, adapters, app, "cache_dir", "cached")
    source_release = app.current_release
    assert source_release is not None
    sent.sent.clear()

    fork = app_fork.fork_app(session, adapters, settings, owner(app), app, "hello-preview")
    session.commit()

    new = fork.app
    assert new.owner_id == app.owner_id and new.name == "hello-preview"
    assert new.config == {"GREETING": "hi"} and new.formation == {"web": 2}
    assert new.memory == 256 * MB and new.health_check_path == "/health"
    assert new.deploy_strategy == "stop-first"
    release = fork.release
    assert release.version == 1 and release.app_id == new.id
    assert release.description == f"Fork of hello v{source_release.version}"
    assert release.slug_path != source_release.slug_path
    assert Path(release.slug_path).read_bytes() == Path(source_release.slug_path).read_bytes()
    assert "/slugs/hello-preview/" in release.slug_path
    assert (release.stack, release.process_types) == (
        source_release.stack,
        source_release.process_types,
    )
    assert release.config == source_release.config

    assert [(s.slot, s.source, s.space) for s in fork.spaces] == [
        ("cache_dir", "hello-cache-dir", "hello-preview-cache-dir"),
        ("data", "hello-data", "hello-preview-data"),
    ]
    attached = {a.slot: a for a in spaces.attachments_of(session, new)}
    assert attached["data"].space.name == "hello-preview-data"
    assert attached["data"].process_types == ["web"] and attached["cache_dir"].process_types == []
    forked = attached["data"].space
    assert forked.owner_id == new.owner_id and forked.origin == "fork of hello-data"
    tree = adapters.spaces.tree(forked.key)
    assert (tree / "note.txt").read_text() == "from the source"
    (tree / "note.txt").write_text("changed in the fork")
    assert (adapters.spaces.tree(data.key) / "note.txt").read_text() == "from the source"

    # The roll is sent after the commit; running it makes the fork serve.
    [(task, (app_id, release_id))] = [(n, a) for n, a in sent.sent if n == "slipway.roll"]
    assert (app_id, release_id) == (new.id, release.id)
    deploys.run_roll(session, app_id, release_id, adapters, settings)
    session.refresh(new)
    assert new.current_release_id == release.id and len(live(session, new)) == 2


def test_a_fork_of_an_app_without_spaces_and_the_fork_of_a_fork(
    session: Session, app: App, adapters: Adapters, settings: Settings
) -> None:
    deployed(session, app, adapters, settings)
    first = app_fork.fork_app(session, adapters, settings, owner(app), app, "one")
    session.commit()
    assert first.spaces == []
    deploys.run_roll(session, first.app.id, first.release.id, adapters, settings)
    session.refresh(first.app)
    second = app_fork.fork_app(session, adapters, settings, owner(app), first.app, "two")
    session.commit()
    assert second.release.description == "Fork of one v1"


def test_a_source_without_a_release_is_one_sentence_and_nothing_is_made(
    session: Session, app: App, adapters: Adapters, settings: Settings
) -> None:
    with pytest.raises(Conflict, match="has no release yet: deploy it before forking it"):
        app_fork.fork_app(session, adapters, settings, owner(app), app, "copy")
    session.rollback()
    assert app_named(session, "copy") is None


@pytest.mark.parametrize(
    ("name", "error", "match"),
    [
        ("hello", Conflict, "An app named 'hello' already exists"),
        ("Bad_Name", Invalid, "is not a valid app name"),
        (None, Invalid, "is not a valid app name"),
        ("a" * 60, Invalid, "choose a shorter app name"),
    ],
)
def test_a_taken_or_invalid_name_is_refused_before_anything_is_made(
    session: Session,
    app: App,
    adapters: Adapters,
    settings: Settings,
    name: object,
    error: type[Exception],
    match: str,
) -> None:
    deployed(session, app, adapters, settings)
    with_space(session, adapters, app, "data", "x")
    keys = fakes(adapters).keys()
    with pytest.raises(error, match=match):
        app_fork.fork_app(session, adapters, settings, owner(app), app, name)
    session.rollback()
    assert [a.name for a in session.scalars(select(App))] == ["hello"]
    assert [s.name for s in session.scalars(select(Space))] == ["hello-data"]
    assert fakes(adapters).keys() == keys


def test_a_space_name_the_fork_needs_that_is_taken_is_refused(
    session: Session, app: App, adapters: Adapters, settings: Settings
) -> None:
    deployed(session, app, adapters, settings)
    with_space(session, adapters, app, "data", "x")
    spaces.create_space(session, adapters, owner(app), "copy-data", 64 * MB)
    with pytest.raises(Conflict, match="A space named 'copy-data' already exists"):
        app_fork.fork_app(session, adapters, settings, owner(app), app, "copy")
    session.rollback()
    assert app_named(session, "copy") is None


def test_a_fork_that_fails_half_way_removes_what_it_made(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    deployed(session, app, adapters, settings)
    with_space(session, adapters, app, "a", "first")
    with_space(session, adapters, app, "b", "second")
    keys = fakes(adapters).keys()
    forks = 0
    real_fork = fakes(adapters).fork

    def fork_once(key: str, checkpoint: str | None, new_key: str) -> Path:
        nonlocal forks
        forks += 1
        if forks == 2:
            fakes(adapters).fail.add("fork")
        return real_fork(key, checkpoint, new_key)

    fakes(adapters).fork = fork_once  # type: ignore[method-assign]
    sent.sent.clear()

    with pytest.raises(spaces.SpaceFailed):
        app_fork.fork_app(session, adapters, settings, owner(app), app, "copy")

    session.rollback()
    assert forks == 2
    assert app_named(session, "copy") is None
    assert sorted(s.name for s in session.scalars(select(Space))) == ["hello-a", "hello-b"]
    assert fakes(adapters).keys() == keys
    assert not (adapters.artifacts.root / "slugs" / "copy").exists()  # type: ignore[attr-defined]
    assert not [name for name, _ in sent.sent if name == "slipway.roll"]


def test_another_users_app_cannot_be_forked(
    session: Session, app: App, adapters: Adapters, settings: Settings
) -> None:
    deployed(session, app, adapters, settings)
    mallory = users.create_user(session, "mallory")
    with pytest.raises(NotFound):
        apps.get_app(session, mallory, "hello")  # what the API does before forking


# ----------------------------------------------------------------------------- deleting


def test_a_destroyed_app_keeps_its_spaces_unless_asked(
    session: Session, app: App, adapters: Adapters, settings: Settings
) -> None:
    deployed(session, app, adapters, settings)
    data = with_space(session, adapters, app, "data", "keep me")

    done = apps.delete_app(session, app, adapters, settings)
    session.commit()

    assert done == apps.Destroyed(spaces_kept=["hello-data"], spaces_deleted=[])
    kept = space_named(session, "hello-data")
    assert kept is not None and kept.attachments == []
    assert (adapters.spaces.tree(data.key) / "note.txt").read_text() == "keep me"
    assert session.scalars(select(SpaceAttachment)).all() == []


def test_delete_spaces_deletes_them_with_the_app(
    session: Session, app: App, adapters: Adapters, settings: Settings
) -> None:
    deployed(session, app, adapters, settings)
    data = with_space(session, adapters, app, "data", "x")
    with_space(session, adapters, app, "media", "y")

    done = apps.delete_app(session, app, adapters, settings, delete_spaces=True)
    session.commit()

    assert done == apps.Destroyed(spaces_kept=[], spaces_deleted=["hello-data", "hello-media"])
    assert session.scalars(select(Space)).all() == []
    assert data.key not in fakes(adapters).keys()


def test_delete_spaces_is_refused_while_another_app_shares_one(
    session: Session, app: App, adapters: Adapters, settings: Settings
) -> None:
    deployed(session, app, adapters, settings)
    data = with_space(session, adapters, app, "data", "x")
    other = apps.create_app(session, owner(app), "other", settings)
    spaces.attach_space(session, data, other, "shared")
    session.commit()

    with pytest.raises(Conflict, match="also attached to the app other"):
        apps.delete_app(session, app, adapters, settings, delete_spaces=True)
    session.rollback()

    assert app_named(session, "hello") is not None
    assert space_named(session, "hello-data") is not None
    assert live(session, app)  # nothing was stopped


def test_the_fork_outlives_its_source_and_its_spaces(
    session: Session, app: App, adapters: Adapters, settings: Settings
) -> None:
    deployed(session, app, adapters, settings)
    with_space(session, adapters, app, "data", "shared past")
    fork = app_fork.fork_app(session, adapters, settings, owner(app), app, "copy")
    session.commit()
    source_slug = Path(
        session.scalars(select(Release).where(Release.app_id == app.id)).one().slug_path
    )

    apps.delete_app(session, app, adapters, settings, delete_spaces=True)
    session.commit()

    assert not source_slug.exists() and Path(fork.release.slug_path).is_file()
    forked = space_named(session, "copy-data")
    assert forked is not None
    assert (adapters.spaces.tree(forked.key) / "note.txt").read_text() == "shared past"
    deploys.run_roll(session, fork.app.id, fork.release.id, adapters, settings)
    assert live(session, fork.app)
