"""Build cache: the node fixture built twice on one app with the same lockfile.

The fixture carries its package-lock.json. Each run takes a new app, so its cache is empty,
builds once (cold) and again with the lockfile unchanged (warm). The build time is the span
from the deploy log's ``Building with`` line to its ``Build finished in`` line: the build
container's whole life, without queueing or packing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.harness import Budget, Timeline, delete_app, new_app
from bench.push_to_live import deploy_once
from bench.results import Figure
from bench.stats import summarize
from tests.integration.platform import Platform

TARGET = 5.0


def build_seconds(timeline: Timeline) -> float:
    begin = timeline.when("-----> Building with")
    end = timeline.when("-----> Build finished in ")
    if begin is None or end is None:
        raise RuntimeError("the deploy log has no build start or end line")
    return end - begin


def measure(platform: Platform, budget: Budget, work: Path, runs: int) -> Figure:
    figure = Figure(
        title="build cache",
        how=(
            "The node fixture with a package-lock.json, built on a new app (empty cache: "
            "first) and again with the lockfile unchanged (second), in pairs. Build time = the "
            "build container's span in the deploy log."
        ),
        header=["build", "seconds", "speed-up (first / second, per pair)"],
        target=f"second build ≥ {TARGET:.0f}× faster than the first",
    )
    first: list[float] = []
    second: list[float] = []
    for _ in range(runs):
        if budget.left() < 60:
            figure.notes.append(f"{len(first)} pairs taken (time budget)")
            break
        app = new_app(platform, "bc")
        try:
            for builds in (first, second):
                timeline = deploy_once(platform, app, "node", "tarball", work / app)
                builds.append(build_seconds(timeline))
        finally:
            delete_app(platform, app)
            shutil.rmtree(work / app, ignore_errors=True)
    speedups = summarize([a / b for a, b in zip(first, second, strict=True)])
    figure.add("first (empty cache)", summarize(first).text(), "")
    figure.add("second (same lockfile)", summarize(second).text(), speedups.text(unit="×"))
    figure.met = speedups.median >= TARGET if speedups.n else None
    return figure
