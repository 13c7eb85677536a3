"""The web dashboard: server-rendered pages at ``/`` over the same services as the JSON API.

Register with ``app.register_blueprint(dashboard.bp)``; on registration the blueprint configures
the session cookie (HttpOnly, SameSite=Lax) and a secret key kept in the data directory.
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint(
    "dashboard",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/dashboard-static",
)

# The modules below attach their routes and hooks to ``bp`` when imported.
from slipway.dashboard import actions, auth, formatting, pages, streams  # noqa: E402, F401
