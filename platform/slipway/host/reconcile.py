"""The reconciler: one pass on start, then one every interval until told to stop.

It runs inside the API process (:mod:`slipway.host.api_server`) as one of its agents, or on its
own as ``slipway server reconcile --loop``. Beside the passes, a thread of its own makes the
scheduled space backups (every ``space_backup_interval`` seconds; 0: never), so a long backup
never delays a pass.
"""

from __future__ import annotations

import contextlib
import logging
import threading

from slipway.config import Settings
from slipway.host.signals import stop_on_signals

logger = logging.getLogger(__name__)

BACKUP_CHECK_MAX = 60.0  # seconds between looks for spaces whose backup is due
BACKUP_STOP_WAIT = 20.0  # a backup in progress may finish this long after a stop signal


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
    backups = start_backup_thread(settings, stop)
    passes = reconcile_until(settings, stop, interval, max_passes)
    if backups is not None:
        stop.set()
        backups.join(BACKUP_STOP_WAIT)
    return passes


def reconcile_until(
    settings: Settings, stop: threading.Event, interval: float, max_passes: int | None = None
) -> int:
    """Pass after pass until ``stop`` is set (or max_passes); the number of passes run."""
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


def backup_once(settings: Settings) -> list[str]:
    """Back up every space that is due, unless another process is at it; the names done."""
    from slipway.adapters import build_adapters
    from slipway.db import make_engine, make_session_factory, session_scope
    from slipway.locks import file_lock
    from slipway.services.errors import Conflict
    from slipway.services.space_backups import run_scheduled_backups

    engine = make_engine(settings)
    try:
        with contextlib.suppress(Conflict):  # another run holds the lock: it covers this one
            lock = settings.backups_dir / ".schedule.lock"
            with (
                file_lock(lock, 0, "scheduled backups are running"),
                session_scope(make_session_factory(engine)) as session,
            ):
                return run_scheduled_backups(session, build_adapters(settings), settings)
        return []
    finally:
        engine.dispose()


def start_backup_thread(settings: Settings, stop: threading.Event) -> threading.Thread | None:
    """The scheduled backups' thread (None when they are off)."""
    interval = settings.space_backup_interval
    if interval <= 0:
        return None
    check_every = min(max(float(interval), 1.0), BACKUP_CHECK_MAX)

    def loop() -> None:
        while not stop.wait(check_every):
            try:
                done = backup_once(settings)
                if done:
                    logger.info("scheduled backups of spaces: %s", ", ".join(done))
            except Exception:
                logger.exception("scheduled space backups failed; trying again later")

    thread = threading.Thread(target=loop, name="space-backups", daemon=True)
    thread.start()
    return thread
