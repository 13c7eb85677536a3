"""``fcntl.flock`` that waits in the gevent loop, for the API process.

A blocking ``flock`` is a system call that holds the whole gevent process until the lock is
free. The router's lock is taken around a configuration write and ``nginx -s reload`` (a
subprocess, during which the holder's greenlet yields): a second greenlet of the same process
asking for it (a separate open file, so a separate lock) would block the loop, the holder could
never run to release it, and the process would hang. Here a blocking request becomes
non-blocking tries with short, growing pauses in the loop between them.
"""

from __future__ import annotations

import fcntl
from collections.abc import Callable
from typing import Any

import gevent

FIRST_PAUSE = 0.005  # seconds
LONGEST_PAUSE = 0.1


def cooperative_flock() -> Callable[[], None]:
    """Replace ``fcntl.flock`` for this process; returns a function that puts the original back."""
    blocking_flock = fcntl.flock

    def flock(fd: Any, operation: int) -> None:
        if operation & (fcntl.LOCK_NB | fcntl.LOCK_UN):
            return blocking_flock(fd, operation)
        pause = FIRST_PAUSE
        while True:
            try:
                return blocking_flock(fd, operation | fcntl.LOCK_NB)
            except BlockingIOError:
                gevent.sleep(pause)
                pause = min(pause * 2, LONGEST_PAUSE)

    fcntl.flock = flock

    def restore() -> None:
        fcntl.flock = blocking_flock

    return restore
