"""``/apps/<app>/deploys``: upload a tarball, follow the deploy, stream its log, cancel it."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flask import Response, jsonify, request
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from slipway.api.context import adapters, current_user, db, platform, settings
from slipway.db import session_scope
from slipway.models import App, Deploy
from slipway.services import apps, deploy_cancel
from slipway.services import deploys as deploy_service
from slipway.services.errors import Invalid, NotFound

LOG_POLL_INTERVAL = 0.2  # a followed log (and so a `git push`) sees new lines within this
LOG_CHUNK = 64 * 1024
# Names the git commit the upload was made from (the git hook sends it): the deploy is a git one.
COMMIT_HEADER = "X-Slipway-Commit"
COMMIT_ID = re.compile(r"[0-9a-f]{40}")


def deploy_view(deploy: Deploy) -> dict[str, Any]:
    def when(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": deploy.id,
        "app": deploy.app.name,
        "state": deploy.state,
        "error": deploy.error,
        "source_kind": deploy.source_kind,
        "commit": deploy.commit,
        "release_id": deploy.release_id,
        "created_at": when(deploy.created_at),
        "started_at": when(deploy.started_at),
        "finished_at": when(deploy.finished_at),
    }


def find_deploy(session: Session, app: App, deploy_id: int) -> Deploy:
    deploy = session.get(Deploy, deploy_id)
    if deploy is None or deploy.app_id != app.id:
        raise NotFound(f"App {app.name!r} has no deploy {deploy_id}.")
    return deploy


def commit_header() -> str | None:
    """The commit named by ``X-Slipway-Commit``, if any: a full SHA-1 in hex."""
    value = request.headers.get(COMMIT_HEADER)
    if value is None:
        return None
    commit = value.strip().lower()
    if not COMMIT_ID.fullmatch(commit):
        raise Invalid(f"{COMMIT_HEADER} must be a full commit id (40 hex digits), not {value!r}.")
    return commit


def create_deploy(name: str) -> tuple[Response, int]:
    session = db()
    app = apps.get_app(session, current_user(), name)
    commit = commit_header()  # checked before the upload is read
    deploy = deploy_service.accept_tarball(
        session,
        app,
        request.stream,
        request.content_length,
        settings(),
        adapters().artifacts,
        commit=commit,
    )
    return jsonify(deploy_view(deploy)), 202


def list_deploys(name: str) -> Response:
    session = db()
    app = apps.get_app(session, current_user(), name)
    query = select(Deploy).where(Deploy.app_id == app.id).order_by(Deploy.id.desc()).limit(50)
    return jsonify([deploy_view(deploy) for deploy in session.scalars(query)])


def show_deploy(name: str, deploy_id: int) -> Response:
    session = db()
    app = apps.get_app(session, current_user(), name)
    return jsonify(deploy_view(find_deploy(session, app, deploy_id)))


def cancel_deploy(name: str, deploy_id: int) -> Response:
    """Cancel a queued or running deploy (409 once it ended)."""
    session = db()
    user = current_user()
    deploy = find_deploy(session, apps.get_app(session, user, name), deploy_id)
    cancelled = deploy_cancel.cancel_deploy(session, deploy, adapters(), settings(), user.username)
    return jsonify(deploy_view(cancelled))


def deploy_log(name: str, deploy_id: int) -> Response:
    """The log as plain text; while the deploy runs, new lines are sent as they are written."""
    session = db()
    deploy = find_deploy(session, apps.get_app(session, current_user(), name), deploy_id)
    follow = request.args.get("follow", "1") not in ("0", "false", "no")
    limit = settings().build_timeout + 4 * settings().start_timeout + 60
    stream = stream_log(platform().session_factory, deploy.id, Path(deploy.log_path), follow, limit)
    return Response(stream, mimetype="text/plain", headers={"X-Accel-Buffering": "no"})


def stream_log(
    factory: sessionmaker[Session], deploy_id: int, path: Path, follow: bool, limit: float
) -> Iterator[bytes]:
    """Yield the file as it grows until the deploy ends (or ``limit`` seconds pass)."""
    offset = 0
    deadline = time.monotonic() + limit
    while True:
        # Look at the state first, so the last read catches every line written before the end.
        finished = not follow or _finished(factory, deploy_id) or time.monotonic() > deadline
        for chunk in _read_from(path, offset):
            offset += len(chunk)
            yield chunk
        if finished:
            return
        time.sleep(LOG_POLL_INTERVAL)


def _finished(factory: sessionmaker[Session], deploy_id: int) -> bool:
    with session_scope(factory) as session:
        deploy = session.get(Deploy, deploy_id)
        return deploy is None or deploy.is_finished


def _read_from(path: Path, offset: int) -> Iterator[bytes]:
    try:
        with path.open("rb") as log:
            log.seek(offset)
            while chunk := log.read(LOG_CHUNK):
                yield chunk
    except FileNotFoundError:  # not written yet: the deploy is still queued
        return
