"""What the host's kernel says about a container's memory: its OOM-kill counter and its victims.

The kernel counts every process its OOM killer kills in a memory cgroup (``oom_kill`` in
``memory.oom_control`` on cgroup v1, in ``memory.events`` on v2), whichever process it was:
supervisord's program, a gunicorn worker, a child of a child. The log names each victim
(``oom-kill:...,task_memcg=<cgroup>,task=<name>,pid=...``). Both are the kernel's own files:
an app inside the container can neither write nor replace them.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

logger = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
KMSG = Path("/dev/kmsg")
V1_FILE = "memory.oom_control"
V2_FILE = "memory.events"
RECORD_BYTES = 8192  # /dev/kmsg hands out one record per read, at most about this long
_VICTIM = re.compile(
    r"^oom-kill:.*?,task_memcg=(?P<task_memcg>[^,]*),task=(?P<task>.*),pid=\d+,uid=\d+$"
)
_NAME = re.compile(r"[^A-Za-z0-9_.:@+/-]")  # process names are the app's to choose: tame them
NAME_LENGTH = 32


# ----------------------------------------------------------------------------- the counter


def read_oom_kill(path: Path) -> int | None:
    """The ``oom_kill`` line of a cgroup v1 ``memory.oom_control`` or v2 ``memory.events``."""
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill" and value.strip().isdigit():
            return int(value)
    return None


def counter_files(container_id: str, root: Path = CGROUP_ROOT) -> list[Path]:
    """Where Docker puts a container's memory cgroup: cgroupfs or systemd driver, v1 or v2."""
    scope = f"docker-{container_id}.scope"
    return [
        root / "memory" / "docker" / container_id / V1_FILE,
        root / "memory" / "system.slice" / scope / V1_FILE,
        root / "docker" / container_id / V2_FILE,
        root / "system.slice" / scope / V2_FILE,
    ]


def counter_files_of_pid(
    pid: int, root: Path = CGROUP_ROOT, proc: Path = Path("/proc")
) -> list[Path]:
    """The memory cgroup's counter file of a process (for engines with another cgroup parent)."""
    try:
        lines = (proc / str(pid) / "cgroup").read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        relative = path.lstrip("/")
        if "memory" in controllers.split(","):
            found.append(root / "memory" / relative / V1_FILE)
        elif controllers == "":
            found.append(root / relative / V2_FILE)
    return found


# ----------------------------------------------------------------------------- the victims


@dataclass(frozen=True)
class OomVictim:
    cgroup: str  # the victim's memory cgroup, as the kernel names it (holds the container id)
    name: str  # the killed process's name, tamed


class OomLog(Protocol):
    def read(self) -> list[OomVictim]:
        """The OOM killer's victims logged since the last call (at first: still in the log)."""


def parse_victim(record: str) -> OomVictim | None:
    """The victim of one ``/dev/kmsg`` record (``prio,seq,usec,flags;message``), if it names one."""
    message = record.partition(";")[2].split("\n", 1)[0]
    match = _VICTIM.match(message)
    if match is None:
        return None
    name = _NAME.sub("_", match["task"])[:NAME_LENGTH]
    return OomVictim(match["task_memcg"], name)


class KernelOomLog:
    """Reads the kernel's log (``/dev/kmsg``, root only) without blocking, one pass at a time."""

    def __init__(self, path: Path = KMSG) -> None:
        self.path = path
        self._fd: int | None = None
        self._unreadable = False

    def read(self) -> list[OomVictim]:
        fd = self._open()
        if fd is None:
            return []
        return [v for v in (parse_victim(r) for r in self._records(fd)) if v is not None]

    def _open(self) -> int | None:
        if self._fd is None and not self._unreadable:
            try:
                self._fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
            except OSError as exc:
                self._unreadable = True  # say it once; the counter alone still makes events
                logger.warning("cannot read %s (%s): OOM events name no process", self.path, exc)
        return self._fd

    def _records(self, fd: int) -> Iterable[str]:
        while True:
            try:
                record = os.read(fd, RECORD_BYTES)
            except BlockingIOError:
                return  # read to the end for now
            except OSError as exc:
                if exc.errno == errno.EPIPE:
                    continue  # older records were overwritten before we read them
                logger.warning("reading %s failed: %s", self.path, exc)
                self.close()
                return
            if not record:
                return
            yield record.decode("utf-8", errors="replace")

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
