"""``/apps/<app>/logs``: every instance's log merged, ``?tail=N``, ``&follow=1`` to stream."""

from __future__ import annotations

from collections.abc import Iterator

from flask import Response, request
from sqlalchemy.orm import Session, sessionmaker

from slipway.api.context import adapters, current_user, db, platform, settings
from slipway.config import Settings
from slipway.db import session_scope
from slipway.models import App
from slipway.services import apps, logs
from slipway.services.errors import Invalid
from slipway.volumes.base import VolumeProvider

DEFAULT_TAIL = 100


def app_logs(name: str) -> Response:
    session = db()
    app = apps.get_app(session, current_user(), name)
    lines = _tail_arg()
    if request.args.get("follow", "0") in ("0", "false", "no", ""):
        sources = logs.old_sources(settings(), app) + logs.current_sources(
            session, adapters().volumes, app
        )
        text = "".join(f"{line}\n" for line in logs.tail(sources, lines))
        return Response(text, mimetype="text/plain")
    list_sources = _sources_of(platform().session_factory, adapters().volumes, settings(), app.id)
    stream = logs.follow(list_sources, lines, settings().logs_follow_limit)
    return Response(_as_bytes(stream), mimetype="text/plain", headers={"X-Accel-Buffering": "no"})


def _tail_arg() -> int:
    value = request.args.get("tail", str(DEFAULT_TAIL))
    if not value.isdigit():
        raise Invalid(f"'tail' must be a whole number from 0 to {logs.MAX_TAIL}.")
    return min(int(value), logs.MAX_TAIL)


def _sources_of(
    factory: sessionmaker[Session], volumes: VolumeProvider, config: Settings, app_id: int
) -> logs.SourceLister:
    """Re-reads the app's instances (a session per call: the stream outlives the request)."""

    def list_sources() -> list[logs.LogSource]:
        with session_scope(factory) as session:
            app = session.get(App, app_id)
            if app is None:
                return []
            return logs.old_sources(config, app) + logs.current_sources(session, volumes, app)

    return list_sources


def _as_bytes(lines: Iterator[str]) -> Iterator[bytes]:
    for line in lines:
        yield f"{line}\n".encode()
