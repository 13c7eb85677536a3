"""The models and the migration: round trips, constraints, cascades, the schema matching."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from slipway.config import Settings
from slipway.models import App, Base, Deploy, Instance, Release, User
from tests.fakes import migrated_session


@pytest.fixture
def session(settings: Settings) -> Iterator[Session]:
    with migrated_session(settings) as session:
        yield session


def make_app(session: Session, name: str = "hello") -> App:
    owner = User(username=f"owner-{name}")
    app = App(name=name, owner=owner)
    session.add(app)
    session.flush()
    return app


def make_release(session: Session, app: App, version: int) -> Release:
    release = Release(app=app, version=version, slug_path=f"/slugs/{version}", stack="node")
    session.add(release)
    session.flush()
    return release


def test_the_migration_creates_exactly_the_models_schema(session: Session) -> None:
    context = MigrationContext.configure(session.connection())
    assert compare_metadata(context, Base.metadata) == []


def test_constraints_follow_the_naming_convention(session: Session) -> None:
    inspector = inspect(session.connection())
    uniques = {c["name"] for c in inspector.get_unique_constraints("releases")}
    foreign_keys = {fk["name"] for fk in inspector.get_foreign_keys("apps")}
    assert "uq_releases_app_id_version" in uniques
    assert "fk_apps_current_release_id_releases" in foreign_keys


def test_an_app_gets_defaults_and_keeps_json_changes(session: Session) -> None:
    app = make_app(session)
    session.commit()
    assert app.formation == {"web": 1}
    assert app.config == {}
    assert app.deploy_branch == "main"
    assert app.created_at.tzinfo is UTC
    app.config["GREETING"] = "hi"  # in place: the session must notice
    session.commit()
    session.expire_all()
    assert session.get(App, app.id).config == {"GREETING": "hi"}  # type: ignore[union-attr]


def test_release_versions_are_unique_per_app(session: Session) -> None:
    first, second = make_app(session, "one"), make_app(session, "two")
    make_release(session, first, 1)
    make_release(session, second, 1)  # another app may have its own v1
    with pytest.raises(IntegrityError):
        make_release(session, first, 1)


def test_app_names_are_unique(session: Session) -> None:
    make_app(session, "same")
    with pytest.raises(IntegrityError):
        session.add(App(name="same", owner=User(username="someone-else")))
        session.flush()


def test_deleting_an_app_removes_its_deploys_releases_and_instances(session: Session) -> None:
    app = make_app(session)
    deploy = Deploy(app=app, source_path="/src.tar.gz", log_path="/log")
    session.add(deploy)
    session.flush()
    release = make_release(session, app, 1)
    release.deploy_id = deploy.id
    deploy.release_id = release.id
    app.current_release = release
    session.add(
        Instance(app=app, release=release, container_name="hello-web-1", volume_name="hello-web-1")
    )
    session.commit()

    session.delete(app)
    session.commit()
    for model in (App, Deploy, Release, Instance):
        assert session.scalars(select(model)).all() == []


def test_current_release_points_back_at_a_release_of_the_app(session: Session) -> None:
    app = make_app(session)
    app.current_release = make_release(session, app, 1)
    session.commit()
    session.expire_all()
    loaded = session.scalars(select(App)).one()
    assert loaded.current_release is not None
    assert loaded.current_release.version == 1
    assert [r.version for r in loaded.releases] == [1]
