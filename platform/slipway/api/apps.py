"""``/apps``: create, list, show and delete apps."""

from __future__ import annotations

from flask import Response, jsonify

from slipway.api.body import json_object
from slipway.api.context import adapters, current_user, db, settings
from slipway.services import apps


def list_apps() -> Response:
    session = db()
    found = apps.list_apps(session, current_user())
    return jsonify(apps.app_views(session, found, settings()))


def create_app() -> tuple[Response, int]:
    session = db()
    app = apps.create_app(session, current_user(), json_object().get("name"), settings())
    session.flush()
    return jsonify(apps.app_view(session, app, settings())), 201


def show_app(name: str) -> Response:
    session = db()
    app = apps.get_app(session, current_user(), name)
    return jsonify(apps.app_view(session, app, settings()))


def delete_app(name: str) -> tuple[str, int]:
    session = db()
    apps.delete_app(session, apps.get_app(session, current_user(), name), adapters(), settings())
    return "", 204


def update_app(name: str) -> Response:
    session = db()
    app = apps.get_app(session, current_user(), name)
    apps.update_app(session, app, json_object(), adapters(), settings())
    return jsonify(apps.app_view(session, app, settings()))
