"""Push-to-live: git push and tarball upload to the first 200 of the new release, per stack.

Per stack and way in, a new app gets a first deploy (cold: its build cache is empty), then
redeploys whose only change is the answer's text (dependencies unchanged). After each redeploy
the same run image is started with ``docker run`` on the same slug and timed to its first 200,
so the comparison is taken side by side.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from bench import containers
from bench.harness import (
    STACKS,
    Budget,
    OutOfTime,
    Timeline,
    delete_app,
    git_commit_all,
    marked_source,
    new_app,
    new_marker,
    push,
    tarball,
    timed_deploy,
    upload,
)
from bench.results import Figure
from bench.stats import summarize
from tests.integration.platform import Platform

METHODS = ("tarball", "git")
STEPS = ("upload", "build", "release", "start", "switch")
TARGET_FACTOR = 2.0


def deploy_once(
    platform: Platform,
    app: str,
    stack: str,
    method: str,
    workdir: Path,
    extra: dict[str, bytes] | None = None,
) -> Timeline:
    """One deploy of the stack's fixture (plus ``extra`` files) answering with a new marker."""
    marker = new_marker()
    marked_source(stack, workdir, marker)
    for name, data in (extra or {}).items():
        (workdir / name).write_bytes(data)
    if method == "git":
        git_commit_all(workdir, marker)
        send = push(platform, app, workdir)
    else:
        send = upload(platform, app, tarball(workdir))
    timeline = timed_deploy(platform, app, marker, send)
    if not timeline.ok or timeline.first_200 is None:
        raise RuntimeError(f"{method} deploy of {stack} app {app} failed: {timeline.error}")
    return timeline


def _row(figure: Figure, stack: str, method: str, kind: str, runs: list[Timeline]) -> float:
    steps = [t.steps() for t in runs]
    total = summarize([s["total"] for s in steps])
    cells = [f"{summarize([s[name] for s in steps]).median:.2f}" for name in STEPS]
    figure.add(stack, method, kind, total.text(), *cells, "")
    return total.median


def measure(platform: Platform, budget: Budget, work: Path, redeploys: int) -> Figure:
    figure = Figure(
        title="push-to-live",
        how=(
            "Seconds from the start of `git push` (or of the upload) to the first 200 of the new "
            "release through the router, split by the moments the deploy log shows each step "
            "done: upload (source stored), build (queue + build container), release (slug "
            "packed, release row), start (instance answers on its port), switch (router moved; "
            "first 200 seen); step columns are medians in seconds. Raw `docker run` = the same "
            "run image on the same slug, timed from `docker run` to its first 200 on the "
            "published port."
        ),
        header=["stack", "way in", "deploy", "to first 200", *STEPS, "vs raw docker run"],
        target=f"redeploy ≤ {TARGET_FACTOR:.0f}× the raw `docker run` of the same run image",
    )
    verdicts: list[bool] = []
    for stack in STACKS:
        raw: list[float] = []
        warm_medians: dict[str, float] = {}
        for method in METHODS:
            try:
                budget.need(120)
            except OutOfTime as exc:
                figure.notes.append(f"{stack} over {method} not measured: {exc}")
                continue
            warm = _measure_app(platform, budget, work, stack, method, redeploys, raw, figure)
            if warm is not None:
                warm_medians[method] = warm
        raw_median = summarize(raw).median
        figure.add(stack, "raw docker run", "", summarize(raw).text(), "", "", "", "", "", "1×")
        for method, median in warm_medians.items():
            factor = median / raw_median
            verdicts.append(factor <= TARGET_FACTOR)
            figure.notes.append(
                f"{stack} over {method}: redeploy median {median:.2f} s = {factor:.1f}× the raw "
                f"docker run ({raw_median:.2f} s)"
            )
            for row in figure.rows:
                if row[:3] == [stack, method, "redeploy"]:
                    row[-1] = f"{factor:.1f}×"
    figure.met = all(verdicts) if verdicts else None
    return figure


def _measure_app(
    platform: Platform,
    budget: Budget,
    work: Path,
    stack: str,
    method: str,
    redeploys: int,
    raw: list[float],
    figure: Figure,
) -> float | None:
    """Cold deploy, then redeploys each followed by a raw docker run; the redeploy median."""
    app = new_app(platform, f"ptl-{stack[:2]}-{method[:3]}")
    workdir = work / app
    try:
        cold = [deploy_once(platform, app, stack, method, workdir)]
        _row(figure, stack, method, "first (cold)", cold)
        warm: list[Timeline] = []
        slug = containers.latest_slug(platform, app)
        for n in range(redeploys):
            if budget.left() < 60:
                figure.notes.append(f"{stack} over {method}: {n} redeploys (time budget)")
                break
            warm.append(deploy_once(platform, app, stack, method, workdir))
            raw.append(containers.raw_docker_run(platform, slug, f"bench-raw-{app}-{n}"))
        if not warm:
            return None
        return _row(figure, stack, method, "redeploy", warm)
    finally:
        delete_app(platform, app)
        shutil.rmtree(workdir, ignore_errors=True)
