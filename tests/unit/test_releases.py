"""Releases with fakes: rollback, config changes and scaling make the right releases and rolls."""

# ruff: noqa: F811  # the fixtures imported from test_pipeline are requested by parameter name

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.adapters import Adapters
from slipway.config import Settings
from slipway.models import App, Instance, Release
from slipway.services import deploys, instances, prune, releases
from slipway.services.errors import Invalid, NotFound
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
)


def roll_sent(sent: RecordingSender) -> tuple[int, int]:
    """Run nothing: return the args of the one roll task sent, and clear the record."""
    rolls = [args for name, args in sent.sent if name == "slipway.roll"]
    assert len(rolls) == 1, sent.sent
    sent.sent.clear()
    return rolls[0][0], rolls[0][1]


def run_sent_roll(
    session: Session, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    app_id, release_id = roll_sent(sent)
    deploys.run_roll(session, app_id, release_id, adapters, settings)


def versions(session: Session, app: App) -> list[int]:
    return sorted(i.release.version for i in live(session, app))


def test_rollback_makes_a_new_release_from_an_old_slug(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    app.config = {"GREETING": "one"}
    session.commit()
    deploy(session, app, adapters, settings, STATIC)
    app.config = {"GREETING": "two"}
    session.commit()
    deploy(session, app, adapters, settings, {"index.html": "two"})
    sent.sent.clear()

    rolled = releases.rollback(session, app, 1)
    session.commit()
    v1 = releases.get_release(session, app, 1)
    assert rolled.version == 3 and rolled.slug_path == v1.slug_path
    assert rolled.config == {"GREETING": "one"} and app.config == {"GREETING": "one"}
    assert rolled.description == "Rollback to v1"
    run_sent_roll(session, adapters, settings, sent)
    assert versions(session, app) == [3]
    assert app.current_release_id == rolled.id
    [web] = live(session, app)
    assert router(adapters).routes[0].upstreams == [web.host_port]
    assert [r.version for r in releases.list_releases(session, app)] == [3, 2, 1]


def test_rollback_refuses_unknown_and_pruned_versions(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    deploy(session, app, adapters, settings, STATIC)
    with pytest.raises(NotFound, match="no release v7"):
        releases.rollback(session, app, 7)
    with pytest.raises(Invalid, match="version to roll back to"):
        releases.rollback(session, app, "1")
    Path(releases.get_release(session, app, 1).slug_path).unlink()
    with pytest.raises(Invalid, match="slug was pruned"):
        releases.rollback(session, app, 1)


def test_config_change_makes_a_release_and_rolls(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    deploy(session, app, adapters, settings, STATIC)
    sent.sent.clear()
    release = releases.change_config(session, app, {"A": "1", "B": "2"})
    session.commit()
    assert release is not None and release.version == 2 and release.config == {"A": "1", "B": "2"}
    assert release.description == "Set A, B"
    run_sent_roll(session, adapters, settings, sent)
    assert versions(session, app) == [2]
    [spec_env] = [i for i in runtime(adapters).containers.values()]
    assert spec_env.labels["io.slipway.release"] == "2"

    unset = releases.change_config(session, app, {"A": None})
    session.commit()
    assert unset is not None and unset.config == {"B": "2"} and unset.description == "Unset A"
    assert releases.change_config(session, app, {"A": None}) is None  # nothing changed
    run_sent_roll(session, adapters, settings, sent)
    assert versions(session, app) == [3]


def test_config_change_before_any_release_only_stores_it(
    session: Session, app: App, sent: RecordingSender
) -> None:
    assert releases.change_config(session, app, {"A": "1"}) is None
    session.commit()
    assert app.config == {"A": "1"} and sent.sent == []
    with pytest.raises(Invalid):
        releases.change_config(session, app, {"PORT": "1"})


def test_a_failed_config_roll_keeps_the_old_release(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    deploy(session, app, adapters, settings, STATIC)
    sent.sent.clear()
    releases.change_config(session, app, {"BROKEN": "yes"})
    session.commit()
    runtime(adapters).dead_releases = {"2"}
    with pytest.raises(instances.StartFailed):
        run_sent_roll(session, adapters, settings, sent)
    assert versions(session, app) == [1]
    assert app.current_release is not None and app.current_release.version == 1


def test_an_older_roll_never_undoes_a_newer_one(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    deploy(session, app, adapters, settings, STATIC)
    deploy(session, app, adapters, settings, STATIC)
    v1 = releases.get_release(session, app, 1)
    deploys.run_roll(session, app.id, v1.id, adapters, settings)
    assert versions(session, app) == [2]


def test_scale_up_and_down(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    deploy(session, app, adapters, settings, STATIC)
    sent.sent.clear()
    assert instances.scale(session, app, {"web": 3}) == {"web": 3}
    session.commit()
    run_sent_roll(session, adapters, settings, sent)
    assert sorted(i.index for i in live(session, app)) == [1, 2, 3]
    assert len(router(adapters).routes[0].upstreams) == 3
    first = min(live(session, app), key=lambda i: i.index)

    instances.scale(session, app, {"web": 1})
    session.commit()
    run_sent_roll(session, adapters, settings, sent)
    assert [i.id for i in live(session, app)] == [first.id]  # scaling down keeps web.1
    assert router(adapters).routes[0].upstreams == [first.host_port]
    assert len(runtime(adapters).stopped) == 2  # web.2 and web.3, drained
    instances.scale(session, app, {"web": 0})
    session.commit()
    run_sent_roll(session, adapters, settings, sent)
    assert live(session, app) == [] and router(adapters).routes[0].upstreams == []


def test_scale_validates_and_waits_for_a_release(
    session: Session, app: App, sent: RecordingSender
) -> None:
    for bad in ({}, {"web": -1}, {"web": 11}, {"web": "2"}, {"web": True}, {"bad name": 1}, [1]):
        with pytest.raises(Invalid):
            instances.scale(session, app, bad)
    assert instances.scale(session, app, {"worker": 2}) == {"web": 1, "worker": 2}
    session.commit()
    assert sent.sent == []  # nothing runs yet, so nothing to roll


def test_prune_keeps_the_last_releases_and_shared_slugs(
    session: Session, app: App, adapters: Adapters, settings: Settings, sent: RecordingSender
) -> None:
    for _ in range(4):
        deploy(session, app, adapters, settings, STATIC)
    releases.rollback(session, app, 1)  # v5 shares v1's slug
    session.commit()
    deleted = prune.prune_app(session, app, adapters.artifacts, keep=2)
    slugs = {r.version: Path(r.slug_path) for r in session.scalars(select(Release))}
    assert slugs[1].exists() and slugs[4].exists() and slugs[5] == slugs[1]
    assert not slugs[2].exists() and not slugs[3].exists()
    assert str(slugs[2]) in deleted
    sources = [Path(d.source_path) for d in sorted(app.deploys, key=lambda d: d.id)]
    assert [s.exists() for s in sources] == [False, False, True, True]
    assert session.scalars(select(Instance)).all() != []
