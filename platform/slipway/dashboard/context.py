"""The request's platform (settings, database session, adapters), shared with the JSON API."""

from __future__ import annotations

from flask.sansio.app import App

from slipway.api.context import EXTENSION, Platform, adapters, db, platform, settings
from slipway.config import Settings

__all__ = ["adapters", "db", "platform", "settings", "settings_of"]


def settings_of(app: App) -> Settings:
    """The settings of an app being set up (the API context must be initialised first)."""
    found: Platform | None = app.extensions.get(EXTENSION)
    if found is None:
        raise RuntimeError("register the dashboard after slipway.api.context.init_app(app, ...)")
    return found.settings
