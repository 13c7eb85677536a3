"""The Celery task ``slipway.deliver``: one attempt, then a retry message after the commit."""

from __future__ import annotations

from typing import Any

import pytest

from slipway import tasks
from slipway.config import Settings
from slipway.db import Base, make_engine, session_scope
from slipway.models import App, Delivery, User
from slipway.services import events, webhooks
from slipway.services.webhook_targets import Targets
from slipway.tasks import dispatch
from slipway.tasks import webhooks as webhook_tasks


def test_the_task_attempts_once_and_schedules_the_retry(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The closed port is on loopback, which the operator allows here (a real setting).
    settings = settings.with_overrides(webhook_allowed_networks=("127.0.0.1/32",))
    Base.metadata.create_all(make_engine(settings))
    monkeypatch.setattr(tasks, "_session_factory", None)  # restored after the test
    tasks.configure(settings)
    monkeypatch.setattr("slipway.tasks.webhooks.get_settings", lambda: settings)
    queued: list[tuple[str, tuple[Any, ...]]] = []
    previous = dispatch.set_sender(lambda name, args: queued.append((name, args)))
    retries: list[dict[str, Any]] = []
    monkeypatch.setattr(webhook_tasks.deliver, "apply_async", lambda *a, **kw: retries.append(kw))
    try:
        with session_scope(tasks.session_factory()) as session:
            app = App(name="hello", owner=User(username="ada"))
            session.add(app)
            session.flush()
            targets = Targets.from_settings(settings)
            url = "http://127.0.0.1:9/closed"
            webhooks.create_webhook(session, app, url, ["crash"], targets=targets)
            events.record_event(session, app, "crash", "web crashed")
        ((name, (delivery_id,)),) = queued

        webhook_tasks.deliver.run(delivery_id)  # port 9 refuses: a failed attempt
    finally:
        dispatch.set_sender(previous)

    assert name == webhooks.DELIVER_TASK
    assert retries == [{"countdown": settings.webhook_backoff}]
    with session_scope(tasks.session_factory()) as session:
        delivery = session.get(Delivery, delivery_id)
        assert delivery is not None
        assert (delivery.state, delivery.attempts) == ("pending", 1)
        assert delivery.attempt_log[0].status_code is None
