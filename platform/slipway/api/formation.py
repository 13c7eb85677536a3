"""``/apps/<app>/scale``: how many instances of each process type run."""

from __future__ import annotations

from flask import Response, jsonify

from slipway.api.body import json_object
from slipway.api.context import current_user, db
from slipway.services import apps, instances


def scale(name: str) -> Response:
    session = db()
    app = apps.get_app(session, current_user(), name)
    return jsonify(instances.scale(session, app, json_object()))
