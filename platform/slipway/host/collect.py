"""The collector: Navi notification files and Docker events into app events.

It runs inside the API process (:mod:`slipway.host.api_server`) as one of its agents, or on its
own as ``slipway server collect``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from slipway.config import Settings
from slipway.host.signals import stop_on_signals


def collect_loop(settings: Settings) -> None:
    """Run the collector's watcher until SIGTERM or SIGINT."""
    collect_until(settings, stop_on_signals())


def collect_until(settings: Settings, stop: threading.Event) -> None:
    """Run the collector's watcher until ``stop`` is set."""
    from slipway.adapters import build_adapters
    from slipway.db import make_engine, make_session_factory, session_scope
    from slipway.runtime.kernel import KernelOomLog
    from slipway.services.collector import Watcher

    factory = make_session_factory(make_engine(settings))

    @contextmanager
    def open_session() -> Iterator[Session]:
        with session_scope(factory) as session:
            yield session

    adapters = build_adapters(settings)
    watcher = Watcher(
        open_session, adapters.runtime, adapters.volumes, settings, oom_log=KernelOomLog()
    )
    watcher.run(stop)
