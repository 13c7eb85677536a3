"""The request's platform (settings, database session, adapters), shared with the JSON API."""

from __future__ import annotations

from flask import g
from flask.sansio.app import App
from sqlalchemy.orm import Session

from slipway.api.context import (
    EXTENSION,
    Platform,
    adapters,
    db,
    platform,
    settings,
    transactional,
)
from slipway.config import Settings

__all__ = [
    "adapters",
    "db",
    "discard_session",
    "platform",
    "settings",
    "settings_of",
    "transactional",
]


def settings_of(app: App) -> Settings:
    """The settings of an app being set up (the API context must be initialised first)."""
    found: Platform | None = app.extensions.get(EXTENSION)
    if found is None:
        raise RuntimeError("register the dashboard after slipway.api.context.init_app(app, ...)")
    return found.settings


def discard_session() -> None:
    """Throw away the request's session and whatever it did not commit (after an error).

    Closing works in any state, also after a commit whose task could not be sent.
    """
    session: Session | None = g.pop("db_session", None)
    if session is not None:
        session.close()
