"""``/user`` (who the token belongs to, and new tokens for it) and ``/users`` (admins only)."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request

from slipway.api.body import json_object
from slipway.api.context import current_user, db
from slipway.models import User
from slipway.services import users
from slipway.services.errors import Invalid


def user_view(user: User) -> dict[str, Any]:
    return {"username": user.username, "is_admin": user.is_admin}


def show_user() -> Response:
    return jsonify(user_view(current_user()))


def create_token() -> tuple[Response, int]:
    """Another token for yourself (one per CI system, say), shown once."""
    body = request.get_json(silent=True)
    name = body.get("name") if isinstance(body, dict) else None
    if name is None:
        name = ""
    if not isinstance(name, str) or len(name) > 100:
        raise Invalid("A token's name is text of at most 100 characters.")
    token = users.create_token(db(), current_user(), name=name)
    return jsonify({"token": token, "name": name}), 201


def list_users() -> Response:
    return jsonify([user_view(u) for u in users.list_users(db(), current_user())])


def create_user() -> tuple[Response, int]:
    body = json_object()
    session = db()
    user, token = users.add_user(
        session, current_user(), body.get("username"), body.get("is_admin", False)
    )
    return jsonify({**user_view(user), "token": token}), 201
