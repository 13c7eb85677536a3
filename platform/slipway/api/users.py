"""``/user``: who the token belongs to (the CLI's ``login`` checks a token with it)."""

from __future__ import annotations

from flask import Response, jsonify

from slipway.api.context import current_user


def show_user() -> Response:
    user = current_user()
    return jsonify({"username": user.username, "is_admin": user.is_admin})
