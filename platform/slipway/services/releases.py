"""Releases: immutable, numbered slug + config snapshots. Rollback and config changes make new ones.

Making a release only writes rows; the instances are rolled onto it by the ``slipway.roll`` task,
sent after the transaction commits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from slipway.models import App, Release
from slipway.services import config_vars
from slipway.services.errors import Invalid, NotFound

ROLL_TASK = "slipway.roll"


def enqueue(session: Session, task_name: str, *args: Any) -> None:
    """Send a task once the session commits (imported late: services stay free of Celery)."""
    from slipway.tasks.dispatch import enqueue_after_commit

    enqueue_after_commit(session, task_name, *args)


def next_version(session: Session, app: App) -> int:
    latest = session.scalar(select(func.max(Release.version)).where(Release.app_id == app.id))
    return (latest or 0) + 1


def create_release(
    session: Session,
    app: App,
    *,
    slug_path: str,
    stack: str,
    config: dict[str, str],
    process_types: dict[str, str],
    description: str,
    deploy_id: int | None = None,
) -> Release:
    """Write release v(N+1) of the app; the caller decides when instances move onto it."""
    release = Release(
        app_id=app.id,
        version=next_version(session, app),
        slug_path=slug_path,
        stack=stack,
        config=dict(config),
        process_types=dict(process_types),
        description=description,
        deploy_id=deploy_id,
    )
    session.add(release)
    session.flush()
    return release


def get_release(session: Session, app: App, version: int) -> Release:
    release = session.scalar(
        select(Release).where(Release.app_id == app.id, Release.version == version)
    )
    if release is None:
        raise NotFound(f"The app {app.name} has no release v{version}.")
    return release


def list_releases(session: Session, app: App) -> list[Release]:
    """Newest first."""
    query = select(Release).where(Release.app_id == app.id).order_by(Release.version.desc())
    return list(session.scalars(query))


def rollback(session: Session, app: App, version: object) -> Release:
    """A new release with the slug and config of release ``version``; the instances roll onto it."""
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise Invalid('Send the version to roll back to, like {"version": 3}.')
    target = get_release(session, app, version)
    if not Path(target.slug_path).is_file():
        raise Invalid(f"Release v{version} is too old: its slug was pruned.")
    release = create_release(
        session,
        app,
        slug_path=target.slug_path,
        stack=target.stack,
        config=target.config,
        process_types=target.process_types,
        description=f"Rollback to v{version}",
    )
    app.config = dict(target.config)
    enqueue(session, ROLL_TASK, app.id, release.id)
    return release


def change_config(session: Session, app: App, changes: object) -> Release | None:
    """Apply a config change; with a running release, make a new release and roll onto it.

    Returns the new release, or None when the app has no release yet or nothing changed.
    """
    checked = config_vars.validate_changes(changes)
    config = config_vars.apply_changes(dict(app.config), checked)
    if config == dict(app.config):
        return None
    app.config = config
    current = app.current_release
    if current is None:
        session.flush()
        return None
    release = create_release(
        session,
        app,
        slug_path=current.slug_path,
        stack=current.stack,
        config=config,
        process_types=current.process_types,
        description=_describe(checked),
    )
    enqueue(session, ROLL_TASK, app.id, release.id)
    return release


def _describe(changes: dict[str, str | None]) -> str:
    set_keys = sorted(k for k, v in changes.items() if v is not None)
    unset_keys = sorted(k for k, v in changes.items() if v is None)
    parts = []
    if set_keys:
        parts.append("Set " + ", ".join(set_keys))
    if unset_keys:
        parts.append("Unset " + ", ".join(unset_keys))
    return "; ".join(parts)
