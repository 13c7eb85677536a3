"""``/spaces/<name>/backup`` (a fresh one, streamed), ``/spaces/restore`` (an upload into a new
space), ``/spaces/<name>/backups`` and ``/spaces/backups/<id>`` (the kept ones)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from flask import Response, jsonify, request, send_file

from slipway.api.context import adapters, current_user, db, platform, settings
from slipway.db import session_scope
from slipway.models import Space, SpaceBackup
from slipway.models.space import READY
from slipway.services import space_backups, spaces
from slipway.services.errors import Conflict

MIMETYPE = "application/zstd"


def backup_view(backup: SpaceBackup) -> dict[str, Any]:
    return {
        "id": backup.id,
        "space": backup.space_name,
        "file": backup.path.rpartition("/")[2],
        "size": backup.size,
        "sha256": backup.sha256,
        "scheduled": backup.scheduled,
        "created_at": backup.created_at.isoformat(),
    }


def download_backup(name: str) -> Response:
    """A fresh backup of the space, streamed as it is made."""
    space = spaces.get_space(db(), current_user(), name)
    if space.state != READY:
        raise Conflict(f"The space {space.name} is still being made; back it up in a moment.")
    space_id = space.id
    factory = platform().session_factory

    def backed_up(size: int, sha256: str) -> None:
        with session_scope(factory) as session:
            found = session.get(Space, space_id)
            if found is not None:
                space_backups.record_backed_up(session, found, size, sha256)

    chunks = space_backups.stream_backup(adapters().spaces, space, backed_up)
    first = next(chunks)  # the checkpoint is made: a failure still gets a JSON answer
    filename = space_backups.backup_name(space.name, datetime.now(UTC))
    return Response(
        _primed(first, chunks),
        mimetype=MIMETYPE,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Accel-Buffering": "no",
        },
    )


def _primed(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    """``first``, then the rest; Werkzeug closes this when the client goes away, and closing
    ``rest`` stops tar and deletes the checkpoint."""
    try:
        yield first
        yield from rest
    finally:
        close = getattr(rest, "close", None)
        if close is not None:
            close()


def restore() -> tuple[Response, int]:
    """The request body is a backup: checked whole, then unpacked into the new space ``name``."""
    session = db()
    args = request.args
    size = spaces.parse_space_size(args.get("size"), 0) if args.get("size") else None
    space = space_backups.restore_backup(
        session,
        adapters(),
        settings(),
        current_user(),
        request.stream,
        args.get("name", ""),
        size=size,
        content_length=request.content_length,
    )
    usage = spaces.space_usage(adapters(), space)
    return jsonify(spaces.space_view(space, usage, adapters().spaces.copies)), 201


def list_backups(name: str) -> Response:
    found = space_backups.list_backups(db(), current_user(), name)
    return jsonify([backup_view(backup) for backup in found])


def get_backup(backup_id: int) -> Response:
    """A kept backup's file."""
    backup = space_backups.get_backup(db(), current_user(), backup_id, settings())
    path = space_backups.backup_path(backup, settings())
    return send_file(path, mimetype=MIMETYPE, as_attachment=True, download_name=path.name)
