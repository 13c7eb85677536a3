"""Disk hygiene: slugs and sources beyond the last N releases (and deploys) of an app go away.

Release rows stay (the history is cheap); only their files are deleted. A slug is kept while any
kept release still points at it, since a rollback release shares its slug with an older one.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.models import App, Deploy, Release
from slipway.models.deploy import TERMINAL_STATES
from slipway.services.artifacts import ArtifactStore


def prune_app(session: Session, app: App, artifacts: ArtifactStore, keep: int) -> list[str]:
    """Delete old slugs and sources of ``app``; the paths deleted."""
    keep = max(1, keep)
    releases = list(
        session.scalars(
            select(Release).where(Release.app_id == app.id).order_by(Release.version.desc())
        )
    )
    kept = releases[:keep] + [r for r in releases if r.id == app.current_release_id]
    needed = {r.slug_path for r in kept}
    deleted: list[str] = []
    for release in releases[keep:]:
        if release.slug_path not in needed and release.slug_path not in deleted:
            artifacts.delete(release.slug_path)
            deleted.append(release.slug_path)
    deploys = list(
        session.scalars(select(Deploy).where(Deploy.app_id == app.id).order_by(Deploy.id.desc()))
    )
    for deploy in deploys[keep:]:
        if deploy.state in TERMINAL_STATES and deploy.source_path:
            artifacts.delete(deploy.source_path)
            deleted.append(deploy.source_path)
    return deleted
