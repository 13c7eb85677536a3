"""Spaces: checkpoint and fork time of a btrfs space holding 100 MB, 1 GB and 4 GB, next to a
plain ``cp -a`` of the same data (what the directory provider does) in the same run.

The space and the copy's source are filled with the same incompressible data (random 64 MB
blocks, in files of up to 256 MB) and synced before anything is timed, so that each figure is
the operation itself and not the write-back of the fill. A checkpoint is timed whole (sync,
freeze, snapshot, unfreeze); a fork until its filesystem is mounted; the copy until ``cp -a``
has finished and its data is synced to disk. The spaces live in a pool of their own under the
bench's work directory, beside the platform's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from bench.harness import Budget
from bench.results import Figure
from bench.stats import summarize
from slipway.volumes.btrfs_spaces import BtrfsSpaces
from tests.integration.platform import Platform

MB = 1024**2
GB = 1024**3
SIZES = ((100 * MB, "100 MB"), (GB, "1 GB"), (4 * GB, "4 GB"))
BLOCK = 64 * MB
FILE = 256 * MB
POOL = 32 * GB  # sparse: the host spends what the spaces hold
FLAT = 2.0  # the 4 GB median may be at most this many times the 100 MB one...
SLACK_MS = 50.0  # ...or this much above it (a few ms are noise)


def fill(directory: Path, size: int, block: bytes) -> None:
    """Write ``size`` bytes of ``block`` repeated into files of up to FILE bytes."""
    written, number = 0, 0
    while written < size:
        with open(directory / f"data-{number:03d}", "wb") as out:
            part = 0
            while part < FILE and written < size:
                chunk = block[: min(len(block), size - written)]
                out.write(chunk)
                part += len(chunk)
                written += len(chunk)
        number += 1


def sync(path: Path) -> None:
    subprocess.run(["sync", "-f", str(path)], check=True, timeout=600)


def timed_ms(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def copy(source: Path, target: Path) -> None:
    subprocess.run(["cp", "-a", str(source), str(target)], check=True, timeout=1800)
    sync(target)


def measure_size(
    spaces: BtrfsSpaces, work: Path, size: int, runs: int, block: bytes, number: int
) -> dict[str, list[float]]:
    """Milliseconds of each run: checkpoint, fork (live), fork (checkpoint), cp -a."""
    key = f"sp-{number}"
    tree = spaces.create(key, size + size // 4 + 64 * MB)
    source = work / f"copy-source-{number}"
    source.mkdir()
    times: dict[str, list[float]] = {"checkpoint": [], "fork": [], "fork@checkpoint": [], "cp": []}
    try:
        fill(tree, size, block)
        fill(source, size, block)
        sync(tree)
        sync(source)
        for run in range(runs):
            fork_key, checkpoint = f"sp-{number}00{run + 1}", f"c{run}"
            times["checkpoint"].append(timed_ms(partial(spaces.checkpoint, key, checkpoint)))
            times["fork"].append(timed_ms(partial(spaces.fork, key, None, fork_key)))
            spaces.destroy(fork_key)
            from_checkpoint = partial(spaces.fork, key, checkpoint, fork_key)
            times["fork@checkpoint"].append(timed_ms(from_checkpoint))
            spaces.destroy(fork_key)
            target = work / f"copy-{number}-{run}"
            times["cp"].append(timed_ms(partial(copy, source, target)))
            shutil.rmtree(target)
    finally:
        spaces.destroy(key)
        shutil.rmtree(source, ignore_errors=True)
    return times


def measure(platform: Platform, budget: Budget, work: Path, runs: int) -> Figure:
    del platform  # the provider is measured on its own pool, not through the API
    figure = Figure(
        title="spaces",
        how=(
            "A btrfs space (the default provider) holding 100 MB, 1 GB and 4 GB of incompressible "
            "data: milliseconds to checkpoint it, to fork it as it is now, and to fork it from a "
            "checkpoint (until the new space is mounted), next to `cp -a` of the same data on "
            "the host's filesystem (until synced: what the directory provider does for each). "
            "Data synced before timing; medians of the runs."
        ),
        header=["data", "checkpoint", "fork", "fork from a checkpoint", "cp -a", "cp -a / fork"],
        target=(
            f"checkpoint and fork flat: at 4 GB at most {FLAT:g}× (or {SLACK_MS:g} ms above) "
            "the 100 MB time, and faster than the copy"
        ),
    )
    spaces = BtrfsSpaces(work / "spaces", POOL)
    block = os.urandom(BLOCK)
    medians: dict[str, dict[str, float]] = {}
    try:
        for number, (size, label) in enumerate(SIZES, start=1):
            budget.need(30 + 3 * runs * size / (150 * MB))  # a pessimistic disk: 150 MB/s
            times = measure_size(spaces, work, size, runs, block, number)
            stats = {name: summarize(values) for name, values in times.items()}
            medians[label] = {name: s.median for name, s in stats.items()}
            ratio = stats["cp"].median / max(stats["fork"].median, 0.001)
            figure.add(
                label,
                stats["checkpoint"].text("ms", 0),
                stats["fork"].text("ms", 0),
                stats["fork@checkpoint"].text("ms", 0),
                stats["cp"].text("ms", 0),
                f"{ratio:.0f}×",
            )
    finally:
        spaces.unmount_all()
    figure.met = verdict(medians)
    return figure


def verdict(medians: dict[str, dict[str, float]]) -> bool | None:
    small, large = medians.get("100 MB"), medians.get("4 GB")
    if small is None or large is None:
        return None
    for name in ("checkpoint", "fork", "fork@checkpoint"):
        flat = large[name] <= max(FLAT * small[name], small[name] + SLACK_MS)
        if not flat or large[name] >= large["cp"]:
            return False
    return True
