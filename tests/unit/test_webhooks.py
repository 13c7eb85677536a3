"""Webhook signatures, subscriptions, backoff and the delivery state machine (fake HTTP)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from slipway.config import Settings
from slipway.db import Base, make_engine, make_session_factory, session_scope
from slipway.models import App, Delivery, DeliveryAttempt, User
from slipway.services import events, webhooks
from slipway.services.errors import Invalid, NotFound
from slipway.services.webhook_targets import Targets, parse_networks
from slipway.tasks import dispatch

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


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
        return app.id


# A receiver on loopback, as an operator may allow with SLIPWAY_WEBHOOK_ALLOWED_NETWORKS.
LOCAL = Targets(allowed_networks=parse_networks(["127.0.0.1/32"]))


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class FakeReceiver:
    """Answers each POST with the next status (None: the connection fails)."""

    def __init__(self, *statuses: int | None) -> None:
        self.statuses = list(statuses)
        self.requests: list[webhooks.Request] = []

    def __call__(self, request: webhooks.Request, timeout: float) -> webhooks.Response:
        self.requests.append(request)
        status = self.statuses.pop(0)
        if status is None:
            return webhooks.Response(None, 3, "ConnectionError: refused")
        return webhooks.Response(status, 5, None if status < 300 else f"HTTP {status}")


Sent = list[tuple[str, tuple[object, ...]]]


def new_delivery(factory: sessionmaker[Session], app_id: int, sent: Sent) -> int:
    with session_scope(factory) as session:
        app = session.get(App, app_id)
        assert app is not None
        webhooks.create_webhook(
            session, app, "http://127.0.0.1:9/hook", ["crash"], "s" * 32, targets=LOCAL
        )
        events.record_event(session, app, "crash", "web crashed", {"exit_status": 1})
    name, (delivery_id,) = sent[-1]
    assert name == "slipway.deliver"
    assert isinstance(delivery_id, int)
    return delivery_id


def opener(factory: sessionmaker[Session]) -> webhooks.SessionOpener:
    @contextmanager
    def open_session() -> Iterator[Session]:
        with session_scope(factory) as session:
            yield session

    return open_session


# ---------------------------------------------------------------------------------------------
# Signatures
# ---------------------------------------------------------------------------------------------


def test_sign_matches_an_independently_computed_hmac() -> None:
    body = b'{"event":{"type":"crash"}}'
    expected = hmac.new(b"topsecret", b'1700000000.{"event":{"type":"crash"}}', hashlib.sha256)

    assert webhooks.sign("topsecret", body, 1700000000) == f"t=1700000000,v1={expected.hexdigest()}"


def test_sign_known_vector() -> None:
    # HMAC-SHA256(key="key", msg="1.{}"), computed once with another implementation (openssl).
    assert webhooks.sign("key", b"{}", 1) == (
        "t=1,v1=" + hmac.new(b"key", b"1.{}", hashlib.sha256).hexdigest()
    )


def test_verify_accepts_the_signature_and_rejects_tampering() -> None:
    body = b'{"a":1}'
    header = webhooks.sign("secret-1", body, 1000)

    assert webhooks.verify("secret-1", body, header, now=1010)
    assert not webhooks.verify("secret-2", body, header, now=1010)
    assert not webhooks.verify("secret-1", b'{"a":2}', header, now=1010)
    assert not webhooks.verify("secret-1", body, header, now=1000 + 301)  # replayed too late
    assert not webhooks.verify("secret-1", body, "v1=abc", now=1000)
    assert not webhooks.verify("secret-1", body, "t=x,v1=abc", now=1000)


# ---------------------------------------------------------------------------------------------
# Subscriptions
# ---------------------------------------------------------------------------------------------


def test_subscription_crud_and_validation(factory: sessionmaker[Session], app_id: int) -> None:
    with session_scope(factory) as session:
        app = session.get(App, app_id)
        assert app is not None
        hook = webhooks.create_webhook(session, app, "https://example.test/h", ["oom", "crash"])
        assert hook.events == ["crash", "oom"]
        assert len(hook.secret) >= 32  # generated
        every = webhooks.create_webhook(session, app, "http://127.0.0.1:1/x", targets=LOCAL)
        assert every.events == ["*"] and every.wants("released")
        for url, kinds, secret in [
            ("ftp://x/y", None, None),
            ("http://", None, None),
            ("http://x/", ["nope"], None),
            ("http://x/", [], None),
            ("http://x/", None, "short"),
        ]:
            with pytest.raises(Invalid):
                webhooks.create_webhook(session, app, url, kinds, secret)
        assert [w.id for w in webhooks.list_webhooks(session, app)] == [hook.id, every.id]
        webhooks.delete_webhook(session, app, hook.id)
        with pytest.raises(NotFound):
            webhooks.get_webhook(session, app, hook.id)


# ---------------------------------------------------------------------------------------------
# Delivery
# ---------------------------------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap() -> None:
    s = Settings(webhook_backoff=10, webhook_backoff_max=100)

    assert [webhooks.backoff_delay(n, s) for n in range(1, 6)] == [10, 20, 40, 80, 100]


def test_failed_attempts_are_retried_with_backoff_then_delivered_once(
    factory: sessionmaker[Session], app_id: int, sent: Sent, settings: Settings
) -> None:
    delivery_id = new_delivery(factory, app_id, sent)
    receiver, clock = FakeReceiver(500, None, 204), Clock()

    first = webhooks.deliver(opener(factory), delivery_id, settings, receiver, clock)
    assert (first.state, first.retry_in, first.sent) == ("pending", 10.0, True)
    early = webhooks.deliver(opener(factory), delivery_id, settings, receiver, clock)
    assert (early.sent, early.retry_in) == (False, 10.0)  # not due yet: nothing sent
    clock.now += timedelta(seconds=10)
    second = webhooks.deliver(opener(factory), delivery_id, settings, receiver, clock)
    assert second.retry_in == 20.0
    clock.now += timedelta(seconds=20)
    third = webhooks.deliver(opener(factory), delivery_id, settings, receiver, clock)
    assert (third.state, third.retry_in) == ("delivered", None)
    again = webhooks.deliver(opener(factory), delivery_id, settings, receiver, clock)
    assert (again.state, again.sent) == ("delivered", False)

    assert len(receiver.requests) == 3
    with session_scope(factory) as session:
        attempts = session.scalars(select(DeliveryAttempt).order_by(DeliveryAttempt.id)).all()
        assert [(a.status_code, a.error) for a in attempts] == [
            (500, "HTTP 500"),
            (None, "ConnectionError: refused"),
            (204, None),
        ]
        delivery = session.get(Delivery, delivery_id)
        assert delivery is not None and delivery.attempts == 3


def test_gives_up_after_the_limit(
    factory: sessionmaker[Session], app_id: int, sent: Sent, settings: Settings
) -> None:
    limited = settings.with_overrides(webhook_max_attempts=2)
    delivery_id = new_delivery(factory, app_id, sent)
    receiver, clock = FakeReceiver(500, 503), Clock()

    webhooks.deliver(opener(factory), delivery_id, limited, receiver, clock)
    clock.now += timedelta(hours=1)
    last = webhooks.deliver(opener(factory), delivery_id, limited, receiver, clock)

    assert (last.state, last.retry_in) == ("failed", None)
    assert not webhooks.deliver(opener(factory), delivery_id, limited, receiver, clock).sent


def test_a_duplicate_message_during_an_attempt_sends_nothing(
    factory: sessionmaker[Session], app_id: int, sent: Sent, settings: Settings
) -> None:
    delivery_id = new_delivery(factory, app_id, sent)
    receiver = FakeReceiver(200)

    with session_scope(factory) as session:
        request = webhooks.claim(session, delivery_id, settings, T0)
        assert request is not None
        assert webhooks.verify(
            "s" * 32, request.body, request.headers["Slipway-Signature"], 0, T0.timestamp()
        )
    duplicate = webhooks.deliver(opener(factory), delivery_id, settings, receiver, Clock())

    assert not duplicate.sent and duplicate.retry_in is not None
    assert receiver.requests == []
