"""Long-running host commands (`slipway server reconcile --loop`, `collect`) stop cleanly between
passes. The API process has its own handlers in the gevent loop (:mod:`slipway.host.api_server`)."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

logger = logging.getLogger(__name__)


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT, so a loop finishes its pass before it ends."""
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        logger.info("signal %d: stopping after this pass", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    return stop
