"""``/apps/<app>/webhooks``: subscribe, list, delete, and every delivery with its attempts."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify

from slipway.api.body import json_object
from slipway.api.context import current_user, db, settings
from slipway.models import Delivery, Webhook
from slipway.services import apps, webhooks
from slipway.services.webhook_targets import Targets


def webhook_view(webhook: Webhook, with_secret: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": webhook.id,
        "url": webhook.url,
        "events": webhook.events,
        "created_at": webhook.created_at.isoformat(),
    }
    if with_secret:  # shown once, when created: the receiver needs it to verify signatures
        view["secret"] = webhook.secret
    return view


def delivery_view(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "event_id": delivery.event_id,
        "event_type": delivery.event.type,
        "state": delivery.state,
        "attempts": delivery.attempts,
        "next_attempt_at": (
            delivery.next_attempt_at.isoformat() if delivery.next_attempt_at else None
        ),
        "created_at": delivery.created_at.isoformat(),
        "attempt_log": [
            {
                "status_code": a.status_code,
                "duration_ms": a.duration_ms,
                "error": a.error,
                "created_at": a.created_at.isoformat(),
            }
            for a in delivery.attempt_log
        ],
    }


def create_webhook(name: str) -> tuple[Response, int]:
    session = db()
    app = apps.get_app(session, current_user(), name)
    body = json_object()
    webhook = webhooks.create_webhook(
        session,
        app,
        body.get("url"),
        body.get("events"),
        body.get("secret"),
        targets=Targets.from_settings(settings()),
    )
    return jsonify(webhook_view(webhook, with_secret=True)), 201


def list_webhooks(name: str) -> Response:
    session = db()
    app = apps.get_app(session, current_user(), name)
    return jsonify([webhook_view(w) for w in webhooks.list_webhooks(session, app)])


def delete_webhook(name: str, webhook_id: int) -> tuple[str, int]:
    session = db()
    webhooks.delete_webhook(session, apps.get_app(session, current_user(), name), webhook_id)
    return "", 204


def list_deliveries(name: str, webhook_id: int) -> Response:
    session = db()
    app = apps.get_app(session, current_user(), name)
    webhook = webhooks.get_webhook(session, app, webhook_id)
    return jsonify([delivery_view(d) for d in webhooks.list_deliveries(session, webhook)])
