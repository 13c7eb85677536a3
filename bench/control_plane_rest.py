"""Control plane at rest: RSS and PSS of every process of the platform's own supervisord.

After one static deploy (so the API, the worker and the agents have each done real work and
loaded what they load), the platform idles for a few seconds; then every process under its
supervisord is read from ``/proc/<pid>/smaps_rollup``. RSS counts shared pages in every process
that maps them; PSS shares them out, so the PSS total is what the control plane really costs.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from bench.harness import Budget, delete_app, new_app
from bench.memory import process_memory, process_tree
from bench.push_to_live import deploy_once
from bench.results import Figure
from tests.integration.platform import Platform

MB = 1024**2
TARGET_MB = 250.0
IDLE_SECONDS = 5.0


@dataclass(frozen=True)
class ProcessMemory:
    program: str  # the supervisord program it belongs to ("supervisord" for supervisord itself)
    pid: int
    command: str  # its command line, shortened
    rss: int
    pss: int


def supervisord_pid(data_dir: Path) -> int:
    pid_files = sorted(data_dir.rglob("supervisord.pid"))
    if not pid_files:
        raise RuntimeError(f"no supervisord.pid under {data_dir}")
    return int(pid_files[0].read_text().strip())


def program_pids(platform: Platform) -> dict[int, str]:
    """pid → program name, from ``slipway server status``."""
    found: dict[int, str] = {}
    for line in platform.server("status", timeout=60).stdout.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2] == "pid" and parts[3].isdigit():
            found[int(parts[3])] = parts[0]
    return found


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _command(pid: int) -> str:
    raw = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    # Paths shortened to their last part: the table names no directory of the machine.
    words = [word.rsplit("/", 1)[1] if "/" in word.rstrip("/") else word for word in raw.split()]
    return " ".join(words)[:60]


def _program_of(pid: int, root: int, programs: dict[int, str]) -> str:
    current = pid
    while current not in (0, 1):
        if current in programs:
            return programs[current]
        if current == root:
            return "supervisord"
        current = _parent(current)
    return "?"


def rest_memory(platform: Platform) -> list[ProcessMemory]:
    """Every process of the control plane with its RSS and PSS, by program."""
    root = supervisord_pid(platform.data_dir)
    programs = program_pids(platform)
    found = []
    for pid in process_tree(root):
        try:
            rss, pss = process_memory(pid)
            found.append(
                ProcessMemory(_program_of(pid, root, programs), pid, _command(pid), rss, pss)
            )
        except (OSError, IndexError, ValueError):
            continue  # the process ended meanwhile
    return sorted(found, key=lambda p: (p.program, p.pid))


def measure(platform: Platform, budget: Budget, work: Path) -> Figure:
    figure = Figure(
        title="Control plane at rest",
        how=(
            "One static app is deployed, then the platform idles for "
            f"{IDLE_SECONDS:.0f} s; every process under the platform's own supervisord is read "
            "from `/proc/<pid>/smaps_rollup` (RSS counts shared pages in each process, PSS shares "
            "them out), in MB."
        ),
        header=["program", "pid", "process", "rss", "pss"],
        target=f"all processes together ≤ {TARGET_MB:.0f} MB RSS",
    )
    budget.need(90)
    app = new_app(platform, "rest")
    try:
        deploy_once(platform, app, "static", "tarball", work / app)
        time.sleep(IDLE_SECONDS)
        processes = rest_memory(platform)
    finally:
        delete_app(platform, app)
        shutil.rmtree(work / app, ignore_errors=True)
    for p in processes:
        figure.add(p.program, p.pid, p.command, f"{p.rss / MB:.1f} MB", f"{p.pss / MB:.1f} MB")
    rss = sum(p.rss for p in processes)
    pss = sum(p.pss for p in processes)
    figure.add(
        f"total ({len(processes)} processes)", "", "", f"{rss / MB:.0f} MB", f"{pss / MB:.0f} MB"
    )
    figure.met = rss / MB <= TARGET_MB
    return figure
