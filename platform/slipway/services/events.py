"""Events: record what happened to an app once, and queue a delivery for each matching webhook."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.models import App, Delivery, Event, Instance, Space, Webhook
from slipway.models.event import EVENT_TYPES
from slipway.services.errors import Invalid
from slipway.services.webhooks import DELIVER_TASK
from slipway.tasks.dispatch import enqueue_after_commit

MAX_MESSAGE_LENGTH = 2000


def record_event(
    session: Session,
    app: App,
    type: str,
    message: str,
    data: dict[str, Any] | None = None,
    dedupe_key: str | None = None,
    instance: Instance | None = None,
    space: Space | None = None,
) -> Event | None:
    """Store an event and queue its webhook deliveries; None if ``dedupe_key`` was seen before.

    The deliveries are sent only after the caller's transaction commits.
    """
    if type not in EVENT_TYPES:
        raise Invalid(f"{type!r} is not an event type; known: {', '.join(EVENT_TYPES)}.")
    if dedupe_key is not None and _seen(session, dedupe_key):
        return None
    event = Event(
        app_id=app.id,
        instance_id=instance.id if instance is not None else None,
        space_id=space.id if space is not None else None,
        type=type,
        message=message[:MAX_MESSAGE_LENGTH],
        data=data or {},
        dedupe_key=dedupe_key,
    )
    # No SAVEPOINT around this: on pysqlite one commits the outer transaction. One collector
    # runs per host, so the check above is enough; a concurrent duplicate fails the unique key.
    session.add(event)
    session.flush()
    _queue_deliveries(session, app, event)
    return event


def _seen(session: Session, dedupe_key: str) -> bool:
    return session.scalar(select(Event.id).where(Event.dedupe_key == dedupe_key)) is not None


def _queue_deliveries(session: Session, app: App, event: Event) -> None:
    webhooks = session.scalars(select(Webhook).where(Webhook.app_id == app.id))
    for webhook in webhooks:
        if not webhook.wants(event.type):
            continue
        delivery = Delivery(webhook_id=webhook.id, event_id=event.id)
        session.add(delivery)
        session.flush()
        enqueue_after_commit(session, DELIVER_TASK, delivery.id)


def list_events(
    session: Session,
    app: App,
    limit: int = 100,
    before_id: int | None = None,
    types: list[str] | None = None,
) -> list[Event]:
    """The app's events, newest first; ``before_id`` pages further back."""
    query = select(Event).where(Event.app_id == app.id)
    if before_id is not None:
        query = query.where(Event.id < before_id)
    if types:
        query = query.where(Event.type.in_(types))
    return list(session.scalars(query.order_by(Event.id.desc()).limit(max(1, min(limit, 1000)))))
