"""``/apps/<app>/events``: what happened to an app (crashes, OOMs, deploys), newest first."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request

from slipway.api.context import current_user, db
from slipway.models import Event
from slipway.services import apps, events
from slipway.services.errors import Invalid


def event_view(event: Event, app_name: str) -> dict[str, Any]:
    return {
        "id": event.id,
        "app": app_name,
        "type": event.type,
        "message": event.message,
        "instance_id": event.instance_id,
        "data": event.data,
        "created_at": event.created_at.isoformat(),
    }


def _int_arg(name: str, default: int | None) -> int | None:
    value = request.args.get(name)
    if value is None:
        return default
    if not value.isdigit():
        raise Invalid(f"{name!r} must be a whole number.")
    return int(value)


def list_events(name: str) -> Response:
    session = db()
    app = apps.get_app(session, current_user(), name)
    types = [t for t in request.args.get("type", "").split(",") if t]
    found = events.list_events(
        session,
        app,
        limit=_int_arg("limit", 100) or 100,
        before_id=_int_arg("before", None),
        types=types or None,
    )
    return jsonify([event_view(e, app.name) for e in found])
