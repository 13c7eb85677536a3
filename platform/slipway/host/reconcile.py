"""The reconciler process: one pass on start, then one every interval until told to stop."""

from __future__ import annotations

import logging

from slipway.config import Settings
from slipway.host.signals import stop_on_signals

logger = logging.getLogger(__name__)


def reconcile_once(settings: Settings, on_start: bool = False) -> None:
    """One reconciler pass in its own session, with fresh adapters."""
    from slipway.adapters import build_adapters
    from slipway.db import make_engine, make_session_factory, session_scope
    from slipway.services.reconciler import reconcile

    engine = make_engine(settings)
    try:
        with session_scope(make_session_factory(engine)) as session:
            report = reconcile(session, build_adapters(settings), settings, on_start=on_start)
        logger.info("reconciled: %s", report)
    finally:
        engine.dispose()


def reconcile_loop(settings: Settings, interval: float, max_passes: int | None = None) -> int:
    """Pass after pass until SIGTERM/SIGINT (or max_passes); a failed pass is logged, not fatal.

    Returns the number of passes run.
    """
    stop = stop_on_signals()
    passes = 0
    while not stop.is_set() and (max_passes is None or passes < max_passes):
        try:
            reconcile_once(settings, on_start=passes == 0)
        except Exception:
            logger.exception("reconciler pass failed; trying again in %s s", interval)
        passes += 1
        if max_passes is None or passes < max_passes:
            stop.wait(interval)
    return passes
