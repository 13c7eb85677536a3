"""What a request needs from the platform: settings, a database session, adapters, the user.

The session is opened on first use in a request. Views never commit: :func:`transactional`
wraps each API view and commits when it answers below 400 (so a failing commit, or a task that
cannot be sent after it, is still answered by the API's error handlers). Other views (dashboard,
git) are committed after a successful response; an error response rolls back.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, current_app, g
from sqlalchemy.orm import Session, sessionmaker

from slipway.adapters import Adapters, build_adapters
from slipway.config import Settings
from slipway.models import User
from slipway.services.errors import Unauthorized

EXTENSION = "slipway"


@dataclass
class Platform:
    settings: Settings
    session_factory: sessionmaker[Session]
    _adapters: Adapters | None = field(default=None, repr=False)

    @property
    def adapters(self) -> Adapters:
        # Built on first use: a request that only reads the database never needs Docker.
        if self._adapters is None:
            self._adapters = build_adapters(self.settings)
        return self._adapters


def init_app(app: Flask, platform: Platform) -> None:
    app.extensions[EXTENSION] = platform
    app.after_request(_finish_session)
    app.teardown_appcontext(_close_session)


def platform() -> Platform:
    found: Platform = current_app.extensions[EXTENSION]
    return found


def settings() -> Settings:
    return platform().settings


def adapters() -> Adapters:
    return platform().adapters


def db() -> Session:
    """The request's session."""
    if "db_session" not in g:
        g.db_session = platform().session_factory()
    session: Session = g.db_session
    return session


def current_user() -> User:
    user: User | None = g.get("user")
    if user is None:
        raise Unauthorized("Send an API token: Authorization: Bearer <token>.")
    return user


def transactional(view: Callable[..., Any]) -> Callable[..., Any]:
    """Commit the request's session when the view answers successfully."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        response = current_app.make_response(view(*args, **kwargs))
        session: Session | None = g.get("db_session")
        if session is not None and response.status_code < 400:
            session.commit()
        return response

    return wrapper


def _finish_session(response: Response) -> Response:
    if response.status_code < 400:
        session: Session | None = g.get("db_session")
        if session is not None:
            session.commit()
    else:
        _close_session(None)  # closing rolls back, even after a commit that failed half-way
    return response


def _close_session(_error: BaseException | None) -> None:
    session: Session | None = g.pop("db_session", None)
    if session is not None:
        session.close()  # rolls back whatever was not committed
