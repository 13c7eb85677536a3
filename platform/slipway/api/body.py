"""Reading request bodies with one clear sentence when they are not what a view expects."""

from __future__ import annotations

from typing import Any

from flask import request

from slipway.services.errors import Invalid


def json_object() -> dict[str, Any]:
    """The request body as a JSON object."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise Invalid("Send a JSON object as the body, with Content-Type: application/json.")
    return data
