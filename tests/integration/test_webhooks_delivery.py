"""Signed webhook deliveries to a real HTTP receiver on 127.0.0.1, via the real API and schema."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from slipway.config import Settings
from slipway.db import make_engine, make_session_factory, session_scope, upgrade_database
from slipway.models import App
from slipway.services import events, users, webhooks
from slipway.tasks import dispatch
from slipway.webapp import create_app
from tests.helpers import free_port

SECRET = "a-receiver-secret-of-32-chars!!!"


class Receiver:
    """A real HTTP server in a thread that records every POST and answers 200."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.port = port
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def migrated(settings: Settings) -> Settings:
    upgrade_database(settings)  # the real schema, migrations included
    # The receiver is on loopback, which an operator allows with SLIPWAY_WEBHOOK_ALLOWED_NETWORKS.
    return settings.with_overrides(
        webhook_timeout=3.0, webhook_backoff=5.0, webhook_allowed_networks=("127.0.0.1/32",)
    )


@pytest.fixture
def factory(migrated: Settings) -> sessionmaker[Session]:
    return make_session_factory(make_engine(migrated))


@pytest.fixture
def sent() -> Iterator[list[tuple[str, tuple[object, ...]]]]:
    record: list[tuple[str, tuple[object, ...]]] = []
    previous = dispatch.set_sender(lambda name, args: record.append((name, args)))
    yield record
    dispatch.set_sender(previous)


@pytest.fixture
def api(migrated: Settings, factory: sessionmaker[Session]) -> Iterator[FlaskClient]:
    with session_scope(factory) as session:
        token = users.create_token(session, users.create_user(session, "ada", is_admin=True))
    client = create_app(migrated).test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    assert client.post("/api/v1/apps", json={"name": "hello"}).status_code == 201
    yield client


def subscribe(api: FlaskClient, port: int) -> int:
    answer = api.post(
        "/api/v1/apps/hello/webhooks",
        json={"url": f"http://127.0.0.1:{port}/hook", "events": ["crash"], "secret": SECRET},
    )
    assert answer.status_code == 201, answer.json
    assert answer.json is not None and answer.json["secret"] == SECRET
    return int(answer.json["id"])


def crash(factory: sessionmaker[Session], sent: list[tuple[str, tuple[object, ...]]]) -> int:
    with session_scope(factory) as session:
        app = session.query(App).filter_by(name="hello").one()
        events.record_event(session, app, "crash", "web crashed", {"exit_status": 3}, "k1")
    ((task, (delivery_id,)),) = sent
    assert task == "slipway.deliver" and isinstance(delivery_id, int)
    return delivery_id


def opener(factory: sessionmaker[Session]) -> webhooks.SessionOpener:
    @contextmanager
    def open_session() -> Iterator[Session]:
        with session_scope(factory) as session:
            yield session

    return open_session


def test_a_crash_reaches_the_receiver_signed(
    api: FlaskClient,
    factory: sessionmaker[Session],
    migrated: Settings,
    sent: list[tuple[str, tuple[object, ...]]],
) -> None:
    port = free_port()
    webhook_id = subscribe(api, port)
    delivery_id = crash(factory, sent)

    with Receiver(port) as receiver:
        outcome = webhooks.deliver(opener(factory), delivery_id, migrated)

    assert outcome.state == "delivered"
    ((headers, body),) = receiver.received
    t, v1 = (part.split("=", 1)[1] for part in headers["Slipway-Signature"].split(","))
    expected = hmac.new(SECRET.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(v1, expected)
    assert webhooks.verify(SECRET, body, headers["Slipway-Signature"])
    payload = json.loads(body)
    assert payload["event"]["type"] == "crash" and payload["event"]["app"] == "hello"
    assert payload["event"]["data"] == {"exit_status": 3}

    (delivery,) = api.get(f"/api/v1/apps/hello/webhooks/{webhook_id}/deliveries").json or []
    assert delivery["state"] == "delivered"
    assert [a["status_code"] for a in delivery["attempt_log"]] == [200]
    listed = api.get("/api/v1/apps/hello/events").json or []
    assert [(e["type"], e["message"]) for e in listed] == [("crash", "web crashed")]


def test_receiver_down_then_up_is_delivered_after_retries_exactly_once(
    api: FlaskClient,
    factory: sessionmaker[Session],
    migrated: Settings,
    sent: list[tuple[str, tuple[object, ...]]],
) -> None:
    port = free_port()  # nothing listens there yet: the receiver is down
    webhook_id = subscribe(api, port)
    delivery_id = crash(factory, sent)
    now = datetime.now(UTC)

    def clock() -> datetime:
        return now

    outcomes = [webhooks.deliver(opener(factory), delivery_id, migrated, clock=clock)]
    now += timedelta(seconds=5)
    outcomes.append(webhooks.deliver(opener(factory), delivery_id, migrated, clock=clock))
    assert [(o.state, o.retry_in) for o in outcomes] == [("pending", 5.0), ("pending", 10.0)]

    with Receiver(port) as receiver:
        now += timedelta(seconds=10)
        for _ in range(3):  # the up receiver acknowledges; later messages send nothing
            outcomes.append(webhooks.deliver(opener(factory), delivery_id, migrated, clock=clock))
            now += timedelta(minutes=10)

    assert [o.sent for o in outcomes] == [True, True, True, False, False]
    assert len(receiver.received) == 1
    (delivery,) = api.get(f"/api/v1/apps/hello/webhooks/{webhook_id}/deliveries").json or []
    assert delivery["state"] == "delivered" and delivery["attempts"] == 3
    assert [a["status_code"] for a in delivery["attempt_log"]] == [None, None, 200]
    assert "Connection" in (delivery["attempt_log"][0]["error"] or "")


def test_webhook_api_lists_and_deletes(api: FlaskClient) -> None:
    webhook_id = subscribe(api, 9)
    listed = api.get("/api/v1/apps/hello/webhooks").json or []
    assert [w["id"] for w in listed] == [webhook_id] and "secret" not in listed[0]
    bad = api.post("/api/v1/apps/hello/webhooks", json={"url": "gopher://x", "events": ["crash"]})
    assert bad.status_code == 422 and "url" in (bad.json or {})["error"]

    assert api.delete(f"/api/v1/apps/hello/webhooks/{webhook_id}").status_code == 204
    assert api.get("/api/v1/apps/hello/webhooks").json == []
    assert api.delete(f"/api/v1/apps/hello/webhooks/{webhook_id}").status_code == 404
