"""The collector process: Navi notification files and Docker events into app events."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from sqlalchemy.orm import Session

from slipway.config import Settings

logger = logging.getLogger(__name__)


def collect_loop(settings: Settings) -> None:
    """Run the collector's watcher until SIGTERM or SIGINT."""
    from slipway.adapters import build_adapters
    from slipway.db import make_engine, make_session_factory, session_scope
    from slipway.services.collector import Watcher

    factory = make_session_factory(make_engine(settings))

    @contextmanager
    def open_session() -> Iterator[Session]:
        with session_scope(factory) as session:
            yield session

    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        logger.info("signal %d: stopping after this pass", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    adapters = build_adapters(settings)
    Watcher(open_session, adapters.runtime, adapters.volumes, settings).run(stop)
