"""``python -m bench.run``: start a platform of its own, take every figure, write RESULTS.md.

Bounded: the figures share one time budget (default 13 minutes, leaving room to start and stop
the platform within 15), and each one reports what it managed when time runs out. Traffic goes
to 127.0.0.1 only. Whatever happens, the platform is stopped and its containers, volumes and
data dir are removed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench import (
    app_fork,
    build_cache,
    control_plane,
    control_plane_rest,
    java_build,
    memory,
    node_build,
    push_to_live,
    router,
    spaces,
    wake,
)
from bench.harness import Budget
from bench.results import Figure, machine, render, write
from tests.integration.platform import Platform, start_platform, stop_platform

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
FIGURES = (
    "control-plane-rest",  # first: the platform at rest after its first deploy
    "push-to-live",
    "build-cache",
    "java-build",
    "node-build",
    "router",
    "memory",
    "control-plane",
    "spaces",
    "app-fork",
    "wake",
    "stampede",
    "density",
)
# Density deploys many apps: it has a make target of its own (make bench-density) and is left out
# of the suite's default run, which must stay within 15 minutes.
DEFAULT_FIGURES = [name for name in FIGURES if name != "density"]


def _figures(args: argparse.Namespace, work: Path) -> dict[str, Callable[..., Figure]]:
    return {
        "control-plane-rest": lambda p, b: control_plane_rest.measure(p, b, work),
        "push-to-live": lambda p, b: push_to_live.measure(p, b, work, args.runs),
        "build-cache": lambda p, b: build_cache.measure(p, b, work, args.runs),
        "java-build": lambda p, b: java_build.measure(p, b, work, args.runs),
        "node-build": lambda p, b: node_build.measure(p, b, work, args.runs),
        "router": lambda p, b: router.measure(p, b, work, args.runs, args.wrk_seconds),
        "memory": lambda p, b: memory.measure(p, b, work),
        "control-plane": lambda p, b: control_plane.measure(p, b, work, args.apps),
        "spaces": lambda p, b: spaces.measure(p, b, work, args.runs),
        "app-fork": lambda p, b: app_fork.measure(p, b, args.runs),
        "wake": lambda p, b: wake.measure_wake(p, b, work, args.wakes),
        "stampede": lambda p, b: wake.measure_stampede(p, b, work),
        "density": lambda p, b: wake.measure_density(p, b, work, args.density_apps),
    }


def _failed(name: str, exc: BaseException) -> Figure:
    figure = Figure(title=name, how="", header=["error"], target="", met=None)
    figure.add(f"the figure could not be taken: {exc}")
    return figure


def _keep_logs(platform: Platform) -> None:
    """Copy the platform's logs out of its data dir before it goes, to explain a failure."""
    kept = Path(tempfile.mkdtemp(prefix="slipway-bench-logs-"))
    for logs in platform.data_dir.rglob("logs"):
        shutil.copytree(logs, kept / logs.relative_to(platform.data_dir), dirs_exist_ok=True)
    print(f"-----> A figure was not decided: the platform's logs are kept in {kept}", flush=True)


def run(args: argparse.Namespace) -> int:
    started_at, started = datetime.now(UTC), time.monotonic()
    budget = Budget(args.budget)
    root = Path(tempfile.mkdtemp(prefix="slipway-bench-"))
    work = root / "work"
    work.mkdir()
    figures: list[Figure] = []
    platform: Platform | None = None
    try:
        print("-----> Starting a platform of its own", flush=True)
        platform = start_platform(root / "data")
        for name, take in _figures(args, work).items():
            if name not in args.only:
                continue
            print(f"-----> {name} ({budget.left():.0f} s of the budget left)", flush=True)
            try:
                figures.append(take(platform, budget))
            except Exception as exc:
                traceback.print_exc()
                figures.append(_failed(name, exc))
    finally:
        print("-----> Stopping the platform and cleaning up", flush=True)
        if platform is not None and any(f.met is None for f in figures):
            _keep_logs(platform)
        if platform is not None:
            stop_platform(platform)
        shutil.rmtree(root, ignore_errors=True)
    text = render(figures, started_at, time.monotonic() - started, machine())
    write(args.output, text)
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--budget", type=float, default=13 * 60, help="seconds for the figures")
    parser.add_argument("--runs", type=int, default=3, help="runs per measured side")
    parser.add_argument("--wrk-seconds", type=int, default=4, help="duration of one wrk run")
    parser.add_argument("--apps", type=int, default=100, help="apps for the listing latency")
    parser.add_argument("--wakes", type=int, default=10, help="timed wakes per stack")
    parser.add_argument("--density-apps", type=int, default=40, help="apps for the density")
    parser.add_argument("--only", nargs="*", default=DEFAULT_FIGURES, choices=FIGURES)
    parser.add_argument("--output", type=Path, default=RESULTS)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
