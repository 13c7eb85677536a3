"""The sleeper: every few seconds, read which apps had requests and put the idle ones to sleep.

It runs inside the API process (:mod:`slipway.host.api_server`) as one of its agents. The
router's traffic log says when each app last had a request; the sleeper keeps that in memory
and stores it as ``App.active_at`` at most every ``ACTIVE_STAMP_EVERY`` seconds per app, so a
restart of the platform does not take a busy app for an idle one (and the database is not
written on every request).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from slipway.adapters import Adapters
from slipway.config import Settings
from slipway.host.traffic import TrafficLog
from slipway.models import App
from slipway.router.nginx import traffic_log_path
from slipway.services import sleep

logger = logging.getLogger(__name__)

ACTIVE_STAMP_EVERY = 30.0  # seconds between writes of one app's active_at


class Sleeper:
    """What the sleeper remembers between looks: the traffic log's offset, each app's last
    request, and when its active_at was last written."""

    def __init__(self, settings: Settings, traffic: TrafficLog | None = None) -> None:
        self.settings = settings
        self.traffic = traffic or TrafficLog(traffic_log_path(settings))
        self.last_requests: dict[str, float] = {}
        self.stamped: dict[str, float] = {}

    def look(self, session: Session, adapters: Adapters, now: float) -> list[str]:
        """Read new traffic, store activity, put idle apps to sleep; the names that slept."""
        for app, when in self.traffic.read().items():
            self.last_requests[app] = max(when, self.last_requests.get(app, 0.0))
        self.stamp_active(session)
        return sleep.sleep_idle(session, adapters, self.settings, dict(self.last_requests), now)

    def stamp_active(self, session: Session) -> None:
        """Write active_at of apps whose last stored request is ACTIVE_STAMP_EVERY old."""
        for app, when in self.last_requests.items():
            if when - self.stamped.get(app, 0.0) < ACTIVE_STAMP_EVERY:
                continue
            at = datetime.fromtimestamp(when, UTC)
            session.execute(
                update(App)
                .where(App.name == app, or_(App.active_at.is_(None), App.active_at < at))
                .values(active_at=at)
            )
            self.stamped[app] = when
        session.commit()


def sleep_loop(settings: Settings, stop: threading.Event) -> None:
    """Look every ``settings.sleep_check_interval`` seconds until ``stop`` is set; a failed
    look is logged and the next one comes as usual."""
    from slipway.adapters import build_adapters
    from slipway.db import make_engine, make_session_factory, session_scope

    sleeper = Sleeper(settings)
    engine = make_engine(settings)
    factory = make_session_factory(engine)
    adapters: Adapters | None = None
    try:
        while not stop.wait(settings.sleep_check_interval):
            try:
                adapters = adapters or build_adapters(settings)
                with session_scope(factory) as session:
                    slept = sleeper.look(session, adapters, time.time())
                if slept:
                    logger.info("put to sleep: %s", ", ".join(slept))
            except Exception:
                logger.exception("the sleeper's look failed; it looks again in a moment")
    finally:
        engine.dispose()
