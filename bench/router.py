"""Router: ``wrk`` through the router (nginx, by Host header) against the instance's published
port directly, same connections and duration, alternately, on a small static page.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from bench.harness import Budget, delete_app, new_app
from bench.push_to_live import deploy_once
from bench.results import Figure
from bench.stats import summarize
from bench.wrk import WrkResult, run_wrk
from tests.integration.platform import Platform

CONNECTIONS = 16
MIN_RATIO = 0.9
MAX_ADDED_P99_MS = 1.0


@dataclass(frozen=True)
class Pair:
    direct: WrkResult
    routed: WrkResult

    @property
    def ratio(self) -> float:
        return self.routed.requests_per_sec / self.direct.requests_per_sec

    @property
    def added_p50(self) -> float:
        return self.routed.p50 - self.direct.p50

    @property
    def added_p99(self) -> float:
        return self.routed.p99 - self.direct.p99


def compare(
    direct_url: str,
    routed_url: str,
    host: str | None,
    runs: int,
    seconds: int,
    connections: int = CONNECTIONS,
) -> list[Pair]:
    """``runs`` pairs of wrk runs, direct then routed, each ``seconds`` long."""
    pairs = []
    for _ in range(runs):
        direct = run_wrk(direct_url, seconds, connections)
        routed = run_wrk(routed_url, seconds, connections, host=host)
        pairs.append(Pair(direct, routed))
    return pairs


def summarize_pairs(figure: Figure, pairs: list[Pair]) -> None:
    """Fill the figure's table and verdict from the pairs."""
    direct = summarize([p.direct.requests_per_sec for p in pairs])
    routed = summarize([p.routed.requests_per_sec for p in pairs])
    figure.add("direct (published port)", direct.text("req/s", 0), *_latency(pairs, "direct"))
    figure.add("through the router", routed.text("req/s", 0), *_latency(pairs, "routed"))
    ratio = summarize([p.ratio for p in pairs])
    added_p50 = summarize([p.added_p50 for p in pairs])
    added_p99 = summarize([p.added_p99 for p in pairs])
    added = [added_p50.text("ms", 3), added_p99.text("ms", 3)]
    figure.add("router / direct", ratio.text("", 3), *added)
    errors = sum(p.direct.errors + p.routed.errors for p in pairs)
    if errors:
        figure.notes.append(f"{errors} requests failed (non-2xx or socket errors)")
    figure.met = ratio.median >= MIN_RATIO and added_p99.median <= MAX_ADDED_P99_MS and not errors


def _latency(pairs: list[Pair], side: str) -> list[str]:
    results = [getattr(p, side) for p in pairs]
    return [
        summarize([r.p50 for r in results]).text("ms", 3),
        summarize([r.p99 for r in results]).text("ms", 3),
    ]


def measure(platform: Platform, budget: Budget, work: Path, runs: int, seconds: int) -> Figure:
    figure = Figure(
        title="router",
        how=(
            f"`wrk --latency -t 1 -c {CONNECTIONS} -d {seconds}s` on the static fixture's page, "
            "once at the instance's published port on 127.0.0.1 and once through the router "
            "with `Host: <app>.localhost`, alternately; the last row is the ratio of "
            "requests/s and the latency the router adds (routed minus direct, per pair)."
        ),
        header=["path", "requests/s", "p50 (added)", "p99 (added)"],
        target=f"≥ {MIN_RATIO} of direct throughput and ≤ {MAX_ADDED_P99_MS:.0f} ms added at p99",
    )
    budget.need(runs * 2 * seconds + 60)
    app = new_app(platform, "router")
    try:
        deploy_once(platform, app, "static", "tarball", work / app)
        [instance] = platform.api("GET", f"/apps/{app}").json()["instances"]
        direct = f"http://127.0.0.1:{instance['port']}/"
        host = f"{app}.{platform.settings.domain}"
        summarize_pairs(figure, compare(direct, platform.router_url + "/", host, runs, seconds))
    finally:
        delete_app(platform, app)
        shutil.rmtree(work / app, ignore_errors=True)
    return figure
