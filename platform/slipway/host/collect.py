"""The collector process: Navi notification files and Docker events into app events."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from slipway.config import Settings
from slipway.host.signals import stop_on_signals


def collect_loop(settings: Settings) -> None:
    """Run the collector's watcher until SIGTERM or SIGINT."""
    from slipway.adapters import build_adapters
    from slipway.db import make_engine, make_session_factory, session_scope
    from slipway.runtime.kernel import KernelOomLog
    from slipway.services.collector import Watcher

    factory = make_session_factory(make_engine(settings))

    @contextmanager
    def open_session() -> Iterator[Session]:
        with session_scope(factory) as session:
            yield session

    stop = stop_on_signals()
    adapters = build_adapters(settings)
    watcher = Watcher(
        open_session, adapters.runtime, adapters.volumes, settings, oom_log=KernelOomLog()
    )
    watcher.run(stop)
