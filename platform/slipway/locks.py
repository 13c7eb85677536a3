"""Exclusive file locks with a time limit, for work that must not run twice at once on a host."""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from slipway.services.errors import Conflict

POLL = 0.2  # seconds between tries while another holder keeps the lock


def _never() -> bool:
    return False


@contextmanager
def file_lock(
    path: Path, timeout: float, busy: str, give_up: Callable[[], bool] = _never
) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path``; :class:`Conflict` with ``busy`` past ``timeout``
    or as soon as ``give_up()`` is true (a cancelled deploy stops waiting).

    The kernel drops the lock when its holder dies, so a killed worker never leaves it stuck.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline or give_up():
                    raise Conflict(busy) from None
                time.sleep(POLL)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
