"""The Flask application: the API (and, as they land, the dashboard and git) on one WSGI app."""

from __future__ import annotations

from flask import Flask

from slipway import api, dashboard, gitserver
from slipway.adapters import Adapters
from slipway.api import context
from slipway.config import Settings, get_settings
from slipway.db import make_engine, make_session_factory


def create_app(settings: Settings | None = None, adapters: Adapters | None = None) -> Flask:
    """Build the WSGI app; tests pass their own settings and fake adapters."""
    settings = settings or get_settings()
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep the order views chose
    session_factory = make_session_factory(make_engine(settings))
    context.init_app(app, context.Platform(settings, session_factory, adapters))
    api.init_app(app)
    gitserver.init_app(app)
    app.register_blueprint(dashboard.bp)
    return app
