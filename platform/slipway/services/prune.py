"""Disk hygiene: slugs, assets and sources beyond the last N releases (and deploys) of an app go
away.

Release rows stay (the history is cheap); only their files are deleted. A slug (or assets
tarball) is kept while any kept release still points at it, since a rollback release shares its
slug with an older one. The assets unpacked for a pruned release go too.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.config import Settings
from slipway.models import App, Deploy, Release
from slipway.models.deploy import TERMINAL_STATES
from slipway.services import assets
from slipway.services.artifacts import ArtifactStore


def prune_app(
    session: Session,
    app: App,
    artifacts: ArtifactStore,
    keep: int,
    settings: Settings | None = None,
) -> list[str]:
    """Delete old slugs, assets and sources of ``app``; the paths deleted. With ``settings``,
    the assets unpacked for the pruned releases are removed as well."""
    keep = max(1, keep)
    releases = list(
        session.scalars(
            select(Release).where(Release.app_id == app.id).order_by(Release.version.desc())
        )
    )
    kept = releases[:keep] + [r for r in releases if r.id == app.current_release_id]
    needed = {r.slug_path for r in kept} | {r.assets_path for r in kept}
    pruned = [r for r in releases[keep:] if r not in kept]
    deleted: list[str] = []
    for release in pruned:
        for path in (release.slug_path, release.assets_path):
            if path and path not in needed and path not in deleted:
                artifacts.delete(path)
                deleted.append(path)
    if settings is not None:
        assets.remove_unpacked(settings, app.name, [r.id for r in pruned])
    deploys = list(
        session.scalars(select(Deploy).where(Deploy.app_id == app.id).order_by(Deploy.id.desc()))
    )
    for deploy in deploys[keep:]:
        if deploy.state in TERMINAL_STATES and deploy.source_path:
            artifacts.delete(deploy.source_path)
            deleted.append(deploy.source_path)
    return deleted
