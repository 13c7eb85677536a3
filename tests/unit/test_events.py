"""Recording events: deliveries for matching webhooks, sent only after commit, deduplicated."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from slipway.config import Settings
from slipway.db import Base, make_engine, make_session_factory, session_scope
from slipway.models import App, Delivery, Event, User
from slipway.services import events, webhooks
from slipway.services.errors import Invalid
from slipway.services.webhook_targets import Targets, parse_networks
from slipway.tasks import dispatch


@pytest.fixture
def factory(settings: Settings) -> sessionmaker[Session]:
    engine = make_engine(settings)
    Base.metadata.create_all(engine)
    return make_session_factory(engine)


@pytest.fixture
def sent() -> Iterator[list[tuple[str, tuple[object, ...]]]]:
    record: list[tuple[str, tuple[object, ...]]] = []
    previous = dispatch.set_sender(lambda name, args: record.append((name, args)))
    yield record
    dispatch.set_sender(previous)


@pytest.fixture
def app_id(factory: sessionmaker[Session]) -> int:
    with session_scope(factory) as session:
        app = App(name="hello", owner=User(username="ada"))
        session.add(app)
        session.flush()
        # A receiver on loopback, as an operator may allow with SLIPWAY_WEBHOOK_ALLOWED_NETWORKS.
        local = Targets(allowed_networks=parse_networks(["127.0.0.1/32"]))
        for path, kinds in (("crashes", ["crash"]), ("all", ["*"]), ("deploys", ["deploy_failed"])):
            webhooks.create_webhook(
                session, app, f"http://127.0.0.1:9/{path}", kinds, targets=local
            )
        return app.id


def count(session: Session, model: type) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_deliveries_for_matching_webhooks_are_sent_after_commit(
    factory: sessionmaker[Session], app_id: int, sent: list[tuple[str, tuple[object, ...]]]
) -> None:
    with session_scope(factory) as session:
        app = session.get(App, app_id)
        assert app is not None
        event = events.record_event(session, app, "crash", "web exited", {"exit_status": 1})
        assert event is not None
        assert sent == []  # nothing leaves before the commit
    with session_scope(factory) as session:
        deliveries = session.scalars(select(Delivery).order_by(Delivery.id)).all()
        assert sorted(d.webhook.url.rsplit("/", 1)[1] for d in deliveries) == ["all", "crashes"]
        assert sent == [("slipway.deliver", (d.id,)) for d in deliveries]


def test_a_rolled_back_event_sends_nothing(
    factory: sessionmaker[Session], app_id: int, sent: list[object]
) -> None:
    with pytest.raises(RuntimeError), session_scope(factory) as session:
        app = session.get(App, app_id)
        assert app is not None
        events.record_event(session, app, "oom", "out of memory")
        raise RuntimeError("the caller failed after recording")

    assert sent == []
    with session_scope(factory) as session:
        assert count(session, Event) == 0


def test_the_same_dedupe_key_is_stored_and_delivered_once(
    factory: sessionmaker[Session], app_id: int, sent: list[object]
) -> None:
    for _ in range(2):
        with session_scope(factory) as session:
            app = session.get(App, app_id)
            assert app is not None
            events.record_event(session, app, "crash", "web", dedupe_key="notify:x:1-web-crash")

    with session_scope(factory) as session:
        assert count(session, Event) == 1
        assert count(session, Delivery) == 2
    assert len(sent) == 2


def test_unknown_type_is_refused_and_listing_is_newest_first(
    factory: sessionmaker[Session], app_id: int, sent: list[object]
) -> None:
    with session_scope(factory) as session:
        app = session.get(App, app_id)
        assert app is not None
        with pytest.raises(Invalid):
            events.record_event(session, app, "exploded", "?")
        first = events.record_event(session, app, "released", "v1")
        second = events.record_event(session, app, "deploy_failed", "build failed")
        assert first is not None and second is not None
        assert [e.id for e in events.list_events(session, app)] == [second.id, first.id]
        assert [e.id for e in events.list_events(session, app, before_id=second.id)] == [first.id]
        assert [e.type for e in events.list_events(session, app, types=["released"])] == [
            "released"
        ]
