"""``/apps/<app>/config``: read the config vars; change them (a change makes a new release)."""

from __future__ import annotations

from flask import Response, jsonify, request

from slipway.api.context import current_user, db
from slipway.services import apps, releases


def show_config(name: str) -> Response:
    app = apps.get_app(db(), current_user(), name)
    return jsonify(dict(app.config))


def change_config(name: str) -> Response:
    session = db()
    app = apps.get_app(session, current_user(), name)
    releases.change_config(session, app, request.get_json(silent=True))
    return jsonify(dict(app.config))
