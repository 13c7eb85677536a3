"""A blocking flock in the API process waits in the gevent loop: a holder that yields between
taking and releasing its lock still gets to release it."""

from __future__ import annotations

import fcntl
from pathlib import Path

import gevent

from slipway.host.cooperative_flock import cooperative_flock


def _two_holders(path: Path) -> list[str]:
    order: list[str] = []

    def holder(name: str, delay: float) -> None:
        gevent.sleep(delay)
        with path.open("a") as handle:  # each its own open file: its own lock
            fcntl.flock(handle, fcntl.LOCK_EX)
            order.append(f"{name} took")
            gevent.sleep(0.2)  # as around `nginx -s reload`, a subprocess: the loop runs others
            order.append(f"{name} gave")
            fcntl.flock(handle, fcntl.LOCK_UN)

    greenlets = [gevent.spawn(holder, "a", 0), gevent.spawn(holder, "b", 0.05)]
    gevent.joinall(greenlets, timeout=10, raise_error=True)
    assert all(g.dead for g in greenlets), "the lock holders hung"
    return order


def test_the_second_locker_waits_in_the_loop_for_the_first(tmp_path: Path) -> None:
    restore = cooperative_flock()
    try:
        order = _two_holders(tmp_path / "lock")
    finally:
        restore()

    assert order == ["a took", "a gave", "b took", "b gave"]
    assert fcntl.flock.__module__ == "fcntl"  # restored


def test_non_blocking_requests_are_left_as_they_are(tmp_path: Path) -> None:
    restore = cooperative_flock()
    try:
        with (tmp_path / "lock").open("a") as first, (tmp_path / "lock").open("a") as second:
            fcntl.flock(first, fcntl.LOCK_EX | fcntl.LOCK_NB)
            try:
                fcntl.flock(second, fcntl.LOCK_EX | fcntl.LOCK_NB)
                raise AssertionError("a second non-blocking lock was granted")
            except BlockingIOError:
                pass
    finally:
        restore()
