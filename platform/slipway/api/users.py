"""``/user`` (who the token belongs to, and its user's tokens) and ``/users`` (admins only)."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request

from slipway.api.body import json_object
from slipway.api.context import adapters, current_user, db, settings
from slipway.models import ApiToken, User
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


def token_view(token: ApiToken) -> dict[str, Any]:
    """A token as listed: never its secret (only its hash is stored anyway)."""
    return {
        "id": token.id,
        "name": token.name,
        "user": token.user.username,
        "created_at": token.created_at.isoformat(),
        "last_used_at": token.last_used_at.isoformat() if token.last_used_at else None,
    }


def list_tokens() -> Response:
    """Your tokens; an admin may ask for another user's with ``?user=<name>``."""
    listed = users.list_tokens(db(), current_user(), request.args.get("user"))
    return jsonify([token_view(token) for token in listed])


def revoke_token(token_id: int) -> tuple[str, int]:
    users.revoke_token(db(), current_user(), token_id)
    return "", 204


def list_users() -> Response:
    return jsonify([user_view(u) for u in users.list_users(db(), current_user())])


def create_user() -> tuple[Response, int]:
    body = json_object()
    session = db()
    user, token = users.add_user(
        session, current_user(), body.get("username"), body.get("is_admin", False)
    )
    return jsonify({**user_view(user), "token": token}), 201


def delete_user(username: str) -> Response:
    """``?force=1`` also destroys the user's apps; without it a user who owns apps stays."""
    force = request.args.get("force", "") in ("1", "true", "yes")
    destroyed = users.delete_user(
        db(), current_user(), username, adapters(), settings(), force=force
    )
    return jsonify({"username": username, "destroyed_apps": destroyed})
