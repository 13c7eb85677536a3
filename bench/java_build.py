"""Java build: the Maven fixture built twice on one app, the second time with Maven's cache warm.

The fixture (tests/fixtures/apps/java) depends on nothing but the JDK; its build still needs the
plugins of Maven's default lifecycle. The first build of a new app copies them from Debian's
Maven repository in the build image into the app's build cache (``$CACHE/m2``); the second finds
them there. Build time is the build container's span in the deploy log, as for the build cache
figure.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.build_cache import build_seconds
from bench.harness import Budget, delete_app, new_app
from bench.push_to_live import deploy_once
from bench.results import Figure
from bench.stats import summarize
from tests.integration.platform import Platform


def measure(platform: Platform, budget: Budget, work: Path, runs: int) -> Figure:
    figure = Figure(
        title="java build",
        how=(
            "The Maven fixture (no dependencies but the JDK) built on a new app (empty cache: "
            "first) and again with Maven's local repository kept in the build cache (second), "
            "in pairs. Build time = the build container's span in the deploy log."
        ),
        header=["build", "seconds", "speed-up (first / second, per pair)"],
        target="second build not slower than the first (the issue sets no target)",
    )
    first: list[float] = []
    second: list[float] = []
    for _ in range(runs):
        if budget.left() < 60:
            figure.notes.append(f"{len(first)} pairs taken (time budget)")
            break
        app = new_app(platform, "jb")
        try:
            for builds in (first, second):
                timeline = deploy_once(platform, app, "java", "tarball", work / app)
                builds.append(build_seconds(timeline))
        finally:
            delete_app(platform, app)
            shutil.rmtree(work / app, ignore_errors=True)
    speedups = summarize([a / b for a, b in zip(first, second, strict=True)])
    figure.add("first (empty cache)", summarize(first).text(), "")
    figure.add("second (Maven cache warm)", summarize(second).text(), speedups.text(unit="×"))
    figure.met = speedups.median >= 1.0 if speedups.n else None
    return figure
