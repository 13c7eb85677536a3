"""Read-only questions the dashboard pages ask of the database (no Flask in here).

Changes never happen here: every form goes through the same services as the JSON API.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from slipway.models import App, Deploy, Release
from slipway.models import event as event_types
from slipway.models.common import utcnow
from slipway.models.event import Event

CRASH_TYPES = (event_types.CRASH, event_types.OOM, event_types.CRASH_LOOP)
RECENT_CRASH_WINDOW = timedelta(hours=1)


def recent_deploys(db: Session, app: App, limit: int = 15) -> list[Deploy]:
    query = select(Deploy).where(Deploy.app_id == app.id).order_by(Deploy.id.desc()).limit(limit)
    return list(db.scalars(query))


def last_deploys(db: Session, apps: list[App]) -> dict[int, Deploy]:
    """The newest deploy of each app, by app id."""
    if not apps:
        return {}
    newest = (
        select(func.max(Deploy.id))
        .where(Deploy.app_id.in_([app.id for app in apps]))
        .group_by(Deploy.app_id)
    )
    return {d.app_id: d for d in db.scalars(select(Deploy).where(Deploy.id.in_(newest)))}


def recently_crashed(db: Session, apps: list[App]) -> set[int]:
    """Ids of the apps with a crash, OOM or crash loop within the last hour."""
    if not apps:
        return set()
    since = utcnow() - RECENT_CRASH_WINDOW
    query = select(Event.app_id).where(
        Event.app_id.in_([app.id for app in apps]),
        Event.type.in_(CRASH_TYPES),
        Event.created_at >= since,
    )
    return set(db.scalars(query.distinct()))


def find_deploy(db: Session, app: App, deploy_id: int) -> Deploy | None:
    deploy = db.get(Deploy, deploy_id)
    return deploy if deploy is not None and deploy.app_id == app.id else None


def read_log(path: str, limit: int = 256 * 1024) -> tuple[str, int]:
    """The end of a log file (at most ``limit`` bytes) and its size; ("", 0) before it exists."""
    if not path:
        return "", 0
    try:
        with Path(path).open("rb") as log:
            size = log.seek(0, 2)
            log.seek(max(0, size - limit))
            return log.read(size).decode("utf-8", errors="replace"), size
    except FileNotFoundError:
        return "", 0


@dataclass(frozen=True)
class TimelineItem:
    """One entry of an app's timeline: an event row, a finished deploy or a release."""

    kind: str  # an event type: crash, oom, crash_loop, deploy_succeeded, deploy_failed, released
    message: str
    at: datetime


# Deploys and releases are read from their own rows (the record of truth), so event rows of
# these types would only repeat them.
_FROM_OWN_ROWS = {
    event_types.DEPLOY_SUCCEEDED,
    event_types.DEPLOY_FAILED,
    event_types.DEPLOY_CANCELLED,
    event_types.RELEASED,
}


def timeline(db: Session, app: App, events: list[Event], limit: int = 30) -> list[TimelineItem]:
    """Crashes and OOMs, finished deploys and releases, newest first."""
    items = [
        TimelineItem(event.type, event.message, event.created_at)
        for event in events
        if event.type not in _FROM_OWN_ROWS
    ]
    for deploy in recent_deploys(db, app, limit):
        if deploy.is_finished:
            items.append(_deploy_item(deploy))
    releases = select(Release).where(Release.app_id == app.id).order_by(Release.id.desc())
    for release in db.scalars(releases.limit(limit)):
        text = f"v{release.version}" + (f": {release.description}" if release.description else "")
        items.append(TimelineItem(event_types.RELEASED, text, release.created_at))
    items.sort(key=lambda item: item.at, reverse=True)
    return items[:limit]


def _deploy_item(deploy: Deploy) -> TimelineItem:
    at = deploy.finished_at or deploy.created_at
    if deploy.state == "succeeded":
        return TimelineItem(event_types.DEPLOY_SUCCEEDED, f"Deploy #{deploy.id}", at)
    reason = f": {deploy.error}" if deploy.error else ""
    if deploy.state == "cancelled":
        return TimelineItem(event_types.DEPLOY_CANCELLED, f"Deploy #{deploy.id}{reason}", at)
    return TimelineItem(event_types.DEPLOY_FAILED, f"Deploy #{deploy.id}{reason}", at)
