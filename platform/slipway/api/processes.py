"""``/apps/<app>/processes``: each instance's process, and restart, stop or start them."""

from __future__ import annotations

from flask import Response, jsonify, request

from slipway.api.context import adapters, current_user, db, settings
from slipway.services import apps, processes


def list_processes(name: str) -> Response:
    """The processes, and whether the app sleeps (a sleeping app has no web process to list)."""
    session = db()
    app = apps.get_app(session, current_user(), name)
    listed = processes.list_processes(session, adapters(), app)
    return jsonify({**listed, **apps.sleep_view(app, settings())})


def _control(name: str, process_type: str, action: str) -> Response:
    session = db()
    app = apps.get_app(session, current_user(), name)
    body = request.get_json(silent=True)
    which = body.get("instance") if isinstance(body, dict) else None
    return jsonify(processes.control(session, adapters(), app, process_type, action, which))


def restart(name: str, process_type: str) -> Response:
    return _control(name, process_type, "restart")


def stop(name: str, process_type: str) -> Response:
    return _control(name, process_type, "stop")


def start(name: str, process_type: str) -> Response:
    return _control(name, process_type, "start")
