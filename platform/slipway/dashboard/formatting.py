"""Template filters: relative times, durations, sleep settings, and how events read on a
timeline."""

from __future__ import annotations

from datetime import datetime

from slipway.config import format_duration
from slipway.dashboard import bp
from slipway.models import Deploy
from slipway.models import event as event_types
from slipway.models.common import utcnow

EVENT_TITLES = {
    event_types.CRASH: "Crash",
    event_types.OOM: "Out of memory",
    event_types.CRASH_LOOP: "Crash loop",
    event_types.DEPLOY_SUCCEEDED: "Deploy succeeded",
    event_types.DEPLOY_FAILED: "Deploy failed",
    event_types.DEPLOY_CANCELLED: "Deploy cancelled",
    event_types.RELEASED: "Released",
    event_types.APP_SLEPT: "Went to sleep",
    event_types.APP_WOKE: "Woke up",
    event_types.WAKE_FAILED: "Wake failed",
}
BAD_EVENTS = {
    event_types.CRASH,
    event_types.OOM,
    event_types.CRASH_LOOP,
    event_types.DEPLOY_FAILED,
    event_types.WAKE_FAILED,
}
GOOD_EVENTS = {event_types.DEPLOY_SUCCEEDED, event_types.RELEASED}


def duration(seconds: float) -> str:
    """``42s``, ``3m 5s``, ``2h 10m``, ``3d 4h``."""
    seconds = int(max(0, seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


@bp.app_template_filter("ago")
def ago(value: datetime, now: datetime | None = None) -> str:
    seconds = ((now or utcnow()) - value).total_seconds()
    return "just now" if seconds < 5 else f"{duration(seconds).split(' ')[0]} ago"


@bp.app_template_filter("sleep_after")
def sleep_after(seconds: int | None) -> str:
    """An app's sleep setting as a person writes it: ``15m``, ``never``, or ``default``."""
    return "default" if seconds is None else format_duration(seconds)


@bp.app_template_filter("took")
def took(deploy: Deploy) -> str:
    if deploy.started_at is None:
        return "–"
    end = deploy.finished_at or utcnow()
    return duration((end - deploy.started_at).total_seconds())


@bp.app_template_filter("event_title")
def event_title(event_type: str) -> str:
    return EVENT_TITLES.get(event_type, event_type.replace("_", " ").capitalize())


@bp.app_template_filter("event_kind")
def event_kind(event_type: str) -> str:
    """The CSS class of an event on the timeline: bad, ok or plain."""
    if event_type in BAD_EVENTS:
        return "bad"
    return "ok" if event_type in GOOD_EVENTS else ""
