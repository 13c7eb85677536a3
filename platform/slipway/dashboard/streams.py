"""Server-sent events: a deploy's build log while it runs, and an app's logs as they grow.

Each event carries the byte offset it ends at as its ``id``, so a browser that reconnects
(EventSource does so by itself) resumes where it stopped instead of repeating the log.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from flask import Response, abort, request
from sqlalchemy.orm import Session, sessionmaker

from slipway.dashboard import bp, queries
from slipway.dashboard.auth import current_user
from slipway.dashboard.context import adapters, db, platform, settings
from slipway.db import session_scope
from slipway.models import App, Deploy
from slipway.services import apps
from slipway.services import logs as app_logs

POLL_INTERVAL = 0.5
KEEPALIVE_INTERVAL = 15.0
CHUNK = 64 * 1024
LOG_TAIL = 200  # the app page shows as many, so a reconnect repaints the same view


def sse(data: str, event: str | None = None, event_id: int | None = None) -> str:
    """One server-sent event; every line of ``data`` becomes its own ``data:`` field."""
    head = f"event: {event}\n" if event else ""
    head += f"id: {event_id}\n" if event_id is not None else ""
    body = "".join(f"data: {line}\n" for line in data.split("\n"))
    return head + body + "\n"


@bp.route("/apps/<name>/deploys/<int:deploy_id>/events")
def deploy_events(name: str, deploy_id: int) -> Response:
    """The build log as it grows, a ``state`` event on each change, ``end`` when it is over."""
    app = apps.get_app(db(), current_user(), name)
    deploy = queries.find_deploy(db(), app, deploy_id)
    if deploy is None:
        abort(404)
    offset = _start_offset()
    limit = settings().build_timeout + 4 * settings().start_timeout + 60
    stream = follow_deploy(
        platform().session_factory, deploy.id, Path(deploy.log_path), offset, limit
    )
    return Response(stream, mimetype="text/event-stream", headers=_stream_headers())


def _start_offset() -> int:
    value = request.headers.get("Last-Event-ID") or request.args.get("offset") or "0"
    return int(value) if value.isdigit() else 0


def _stream_headers() -> dict[str, str]:
    # No caching, and no buffering in a proxy (nginx honours X-Accel-Buffering).
    return {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def follow_deploy(
    factory: sessionmaker[Session], deploy_id: int, path: Path, offset: int, limit: float
) -> Iterator[str]:
    """Yield events until the deploy ends or ``limit`` seconds pass."""
    deadline = time.monotonic() + limit
    last_state = ""
    last_sent = time.monotonic()
    while True:
        # Read the state before the log, so the last read catches every line written before it.
        state = _deploy_state(factory, deploy_id)
        finished = state in ("", "succeeded", "failed", "cancelled") or time.monotonic() > deadline
        for text, end in new_lines(path, offset, flush=finished):
            offset = end
            yield sse(text, event="log", event_id=end)
            last_sent = time.monotonic()
        if state != last_state:
            yield sse(state or "gone", event="state")
            last_state = state
        if finished:
            yield sse(state or "gone", event="end")
            return
        if time.monotonic() - last_sent > KEEPALIVE_INTERVAL:
            yield ": keep-alive\n\n"
            last_sent = time.monotonic()
        time.sleep(POLL_INTERVAL)


def _deploy_state(factory: sessionmaker[Session], deploy_id: int) -> str:
    with session_scope(factory) as session:
        deploy = session.get(Deploy, deploy_id)
        return deploy.state if deploy is not None else ""


def new_lines(path: Path, offset: int, flush: bool) -> Iterator[tuple[str, int]]:
    """The complete lines written since ``offset``, chunk by chunk, with the offset after each.

    An unfinished last line waits for its newline, unless ``flush`` (the writer is done).
    """
    while True:
        data = _read_chunk(path, offset)
        full = len(data) == CHUNK
        cut = data.rfind(b"\n") + 1
        if not flush and cut and not full:
            data = data[:cut]
        elif not flush and not full:
            data = b""
        if not data:
            return
        offset += len(data)
        yield data.decode("utf-8", errors="replace").removesuffix("\n"), offset
        if not full:
            return


def _read_chunk(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as log:
            log.seek(offset)
            return log.read(CHUNK)
    except FileNotFoundError:  # not written yet: the deploy is still queued
        return b""


@bp.route("/apps/<name>/logs/events")
def app_log_events(name: str) -> Response:
    """The app's logs: the last lines of every instance, then new lines as they are written."""
    app = apps.get_app(db(), current_user(), name)
    factory, volumes, app_id = platform().session_factory, adapters().volumes, app.id
    current = settings()

    def sources() -> list[app_logs.LogSource]:
        with session_scope(factory) as session:
            found = session.get(App, app_id)
            if found is None:
                return []
            return app_logs.old_sources(current, found) + app_logs.current_sources(
                session, volumes, found
            )

    lines = app_logs.follow(sources, LOG_TAIL, current.logs_follow_limit)
    return Response(_log_events(lines), mimetype="text/event-stream", headers=_stream_headers())


def _log_events(lines: Iterator[str]) -> Iterator[str]:
    # The logs service yields "" when it has been quiet a while: a comment keeps the
    # connection open and shows whether the browser is still there.
    for line in lines:
        yield sse(line, event="log") if line else ": keep-alive\n\n"
