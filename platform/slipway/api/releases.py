"""``/apps/<app>/releases`` and ``/apps/<app>/rollback``."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify

from slipway.api.body import json_object
from slipway.api.context import current_user, db
from slipway.models import Release
from slipway.services import apps, releases


def release_view(release: Release, current_id: int | None) -> dict[str, Any]:
    return {
        "version": release.version,
        "stack": release.stack,
        "node_version": release.node_version or None,  # None: the image's own (older releases)
        "description": release.description,
        "process_types": release.process_types,
        "config": release.config,
        "deploy_id": release.deploy_id,
        "current": release.id == current_id,
        "created_at": release.created_at.isoformat(),
    }


def list_releases(name: str) -> Response:
    app = apps.get_app(db(), current_user(), name)
    return jsonify([release_view(r, app.current_release_id) for r in app.releases])


def rollback(name: str) -> tuple[Response, int]:
    session = db()
    app = apps.get_app(session, current_user(), name)
    release = releases.rollback(session, app, json_object().get("version"))
    return jsonify(release_view(release, release.id)), 201
