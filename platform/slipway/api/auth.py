"""Bearer-token authentication for every API call."""

from __future__ import annotations

from flask import g, request

from slipway.api.context import db
from slipway.services import users
from slipway.services.errors import Unauthorized


def bearer_token() -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send an API token: Authorization: Bearer <token>.")
    return token.strip()


def authenticate() -> None:
    """Run before every API view: find the token's user or answer 401."""
    user = users.authenticate_token(db(), bearer_token())
    if user is None:
        raise Unauthorized("That API token is not valid.")
    g.user = user
