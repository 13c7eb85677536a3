"""Node.js build on a release the host has not seen: the fetch is paid once.

Each pair takes a new app and the node fixture (tests/fixtures/apps/node, 164 packages in its
package-lock.json) with ``engines.node`` pinned to a release of an older LTS line that no build
on this platform has used yet, so the first deploy downloads the release from the npm registry,
checks its sha512 and unpacks it, then builds with an empty cache. The second deploy of the same
app finds the release on the host and node_modules in the build cache. Times come from the
deploy log: *to built* runs from the end of the upload to ``Build finished in``; *fetch* from the
``Node.js <version>`` line to ``Building with`` (the download, check and unpacking, before any
container starts).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bench.harness import Budget, Timeline, delete_app, new_app
from bench.push_to_live import deploy_once
from bench.results import Figure
from bench.stats import summarize
from slipway.services.runtimes import node
from tests.integration.platform import Platform

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "apps" / "node"
LINE = 22  # an LTS line the other figures (which take the newest LTS) do not use


def unseen_releases(platform: Platform, count: int) -> list[str]:
    """The newest ``count`` releases of LINE that this platform's host has not unpacked."""
    registry = node.Registry(platform.settings.npm_registry, platform.settings.ca_bundle)
    found = sorted((v for v in registry.releases() if v[0] == LINE), reverse=True)
    names = [".".join(map(str, version)) for version in found]
    fresh = [n for n in names if not node.release_dir(platform.settings, n).exists()]
    return fresh[:count]


def pinned_package_json(version: str) -> bytes:
    package = json.loads((FIXTURE / "package.json").read_text())
    package["engines"] = {"node": version}
    return json.dumps(package, indent=2).encode()


def to_built(timeline: Timeline) -> float:
    if timeline.source_received is None or "build" not in timeline.ends:
        raise RuntimeError("the deploy log has no upload or build end")
    return timeline.ends["build"] - timeline.source_received


def fetch_seconds(timeline: Timeline, version: str) -> float | None:
    """The fetch's span, None when the deploy fetched nothing (the log has no fetch line)."""
    if timeline.when(f"fetching Node.js {version} ") is None:
        return None
    chosen, building = timeline.when(f"-----> Node.js {version} ("), timeline.when("Building with")
    if chosen is None or building is None:
        raise RuntimeError("the deploy log has no Node.js or build start line")
    return building - chosen


def measure(platform: Platform, budget: Budget, work: Path, runs: int) -> Figure:
    figure = Figure(
        title="node build",
        how=(
            f"The node fixture with engines.node pinned to a Node.js {LINE}.x release the host "
            "has not fetched yet, on a new app (first: the release is downloaded, checked and "
            "unpacked, and the cache is empty), then deployed again (second: release on the "
            "host, node_modules in the build cache), in pairs, each pair on another release. "
            "To built = end of upload to `Build finished in`; fetch = the `Node.js` line to "
            "`Building with`."
        ),
        header=["build", "to built", "of which Node.js fetch", "speed-up (first / second)"],
        target="the fetch is paid once: the second build fetches nothing (no target for times)",
    )
    first: list[float] = []
    second: list[float] = []
    fetches: list[float] = []
    fetched_again = 0
    for version in unseen_releases(platform, runs):
        if budget.left() < 90:
            figure.notes.append(f"{len(first)} pairs taken (time budget)")
            break
        app = new_app(platform, "nb")
        try:
            extra = {"package.json": pinned_package_json(version)}
            cold = deploy_once(platform, app, "node", "tarball", work / app, extra)
            warm = deploy_once(platform, app, "node", "tarball", work / app, extra)
        finally:
            delete_app(platform, app)
            shutil.rmtree(work / app, ignore_errors=True)
        fetch = fetch_seconds(cold, version)
        if fetch is None:
            raise RuntimeError(f"the first build on Node.js {version} fetched nothing")
        fetches.append(fetch)
        fetched_again += fetch_seconds(warm, version) is not None
        first.append(to_built(cold))
        second.append(to_built(warm))
    speedups = summarize([a / b for a, b in zip(first, second, strict=True)])
    figure.add(
        "first (unseen release, empty cache)",
        summarize(first).text(),
        summarize(fetches).text(),
        "",
    )
    figure.add("second (same app)", summarize(second).text(), "none", speedups.text(unit="×"))
    figure.met = (fetched_again == 0) if first else None
    if fetched_again:
        figure.notes.append(f"{fetched_again} second builds fetched Node.js again")
    return figure
