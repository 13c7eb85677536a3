"""Read-only questions the dashboard pages ask of the database (no Flask in here).

Changes never happen here: every form goes through the same services as the JSON API.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from slipway.models import App, Deploy
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
