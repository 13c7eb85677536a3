"""Pid files of the processes the platform starts itself (its supervisord, nginx)."""

from __future__ import annotations

import os
from pathlib import Path


def live_pid(pid_file: Path) -> int | None:
    """The pid written in ``pid_file`` when that process is still alive, else None."""
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except (OSError, ValueError):
        return None
    return pid
