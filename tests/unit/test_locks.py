"""The shared file lock: one holder at a time, a clear Conflict past the time limit."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from slipway.locks import file_lock
from slipway.services.errors import Conflict


def _hold(
    path: Path, held: multiprocessing.synchronize.Event, release: multiprocessing.synchronize.Event
) -> None:  # type: ignore[name-defined]
    with file_lock(path, 5, "busy"):
        held.set()
        release.wait(10)


def test_a_second_holder_waits_then_gets_a_clear_conflict(tmp_path: Path) -> None:
    path = tmp_path / "locks" / "app.lock"
    held, release = multiprocessing.Event(), multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold, args=(path, held, release))
    holder.start()
    try:
        assert held.wait(10)
        with pytest.raises(Conflict, match="another deploy is running"):
            with file_lock(path, 0.5, "another deploy is running"):
                pass
    finally:
        release.set()
        holder.join(10)
    with file_lock(path, 1, "busy"):  # free again once the holder let go
        pass
