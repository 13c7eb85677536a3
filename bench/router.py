"""Router: ``wrk`` through the router (nginx, by Host header) against the instance's published
port directly, same connections and duration, alternately, on a small static page.

Besides requests/s and latency, every run records CPU time per request: the router's nginx
workers alone, and the whole machine. On a machine whose cores wrk, the router, Docker's proxy and
the app share, throughput is CPU per request, so that is where the router's cost shows.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from bench.harness import Budget, delete_app, new_app
from bench.push_to_live import deploy_once
from bench.results import Figure
from bench.stats import summarize
from bench.wrk import WrkResult, run_wrk
from slipway.router.nginx import NginxRouter
from tests.integration.platform import Platform

CONNECTIONS = 16
# One pair's ratio swings by ±20 % on a busy 2-core machine even when both sides hit the same
# port (measured direct against direct), so the verdict is the median of several pairs.
MIN_PAIRS = 7
WARM_UP_SECONDS = 1
MIN_RATIO = 0.9
MAX_ADDED_P99_MS = 1.0

Pids = Callable[[], Collection[int]]


# ----------------------------------------------------------------------------- CPU time


@dataclass(frozen=True)
class CpuUse:
    """CPU time per request during one wrk run, in microseconds."""

    machine: float  # every process on every core (busy time in /proc/stat)
    router: float  # the router's nginx workers alone; NaN when they were not watched


def _machine_ticks() -> int:
    """Busy clock ticks of all cores together (everything but idle and iowait)."""
    fields = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4]


def _process_ticks(pids: Collection[int]) -> int:
    """User plus system clock ticks of these processes (one that is gone counts nothing)."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # the fields after the command name
        total += int(fields[11]) + int(fields[12])
    return total


def measured_wrk(
    url: str, seconds: int, connections: int, host: str | None, router_pids: Pids | None
) -> tuple[WrkResult, CpuUse]:
    """One wrk run, and the CPU the machine and the router's workers spent per request."""
    pids = router_pids() if router_pids else ()
    machine, router = _machine_ticks(), _process_ticks(pids)
    result = run_wrk(url, seconds, connections, host=host)
    machine, router = _machine_ticks() - machine, _process_ticks(pids) - router
    per_request = 1e6 / os.sysconf("SC_CLK_TCK") / max(result.requests, 1)
    nan = float("nan")
    return result, CpuUse(machine * per_request, router * per_request if pids else nan)


# ----------------------------------------------------------------------------- pairs


@dataclass(frozen=True)
class Pair:
    direct: WrkResult
    routed: WrkResult
    direct_cpu: CpuUse
    routed_cpu: CpuUse

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
    router_pids: Pids | None = None,
) -> list[Pair]:
    """``runs`` pairs of wrk runs, each ``seconds`` long, after a warm-up of both sides.

    The side that goes first alternates from pair to pair, so load that comes and goes on the
    machine, or a side that is always measured right after the other, favours neither.
    """

    def direct() -> tuple[WrkResult, CpuUse]:
        return measured_wrk(direct_url, seconds, connections, None, None)

    def routed() -> tuple[WrkResult, CpuUse]:
        return measured_wrk(routed_url, seconds, connections, host, router_pids)

    # Warm-up, not kept: the app's first requests, the router's first upstream connections.
    run_wrk(direct_url, WARM_UP_SECONDS, connections)
    run_wrk(routed_url, WARM_UP_SECONDS, connections, host=host)
    pairs = []
    for number in range(runs):
        if number % 2 == 0:
            (d, d_cpu), (r, r_cpu) = direct(), routed()
        else:
            (r, r_cpu), (d, d_cpu) = routed(), direct()
        pairs.append(Pair(d, r, d_cpu, r_cpu))
    return pairs


def summarize_pairs(figure: Figure, pairs: list[Pair]) -> None:
    """Fill the figure's table, CPU notes and verdict from the pairs."""
    direct = summarize([p.direct.requests_per_sec for p in pairs])
    routed = summarize([p.routed.requests_per_sec for p in pairs])
    figure.add("direct (published port)", direct.text("req/s", 0), *_latency(pairs, "direct"))
    figure.add("through the router", routed.text("req/s", 0), *_latency(pairs, "routed"))
    ratio = summarize([p.ratio for p in pairs])
    added_p50 = summarize([p.added_p50 for p in pairs])
    added_p99 = summarize([p.added_p99 for p in pairs])
    added = [added_p50.text("ms", 3), added_p99.text("ms", 3)]
    figure.add("router / direct", ratio.text("", 3), *added)
    figure.notes.append(_cpu_note(pairs))
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


def _cpu_note(pairs: list[Pair]) -> str:
    direct = summarize([p.direct_cpu.machine for p in pairs]).text("µs", 0)
    routed = summarize([p.routed_cpu.machine for p in pairs]).text("µs", 0)
    router = [p.routed_cpu.router for p in pairs if p.routed_cpu.router == p.routed_cpu.router]
    note = f"CPU per request, whole machine: direct {direct}, through the router {routed}"
    if router:
        note += f"; of which the router's nginx {summarize(router).text('µs', 0)}"
    return note + "."


def _same_page(platform: Platform, app: str, direct_url: str) -> None:
    """Both sides must be the very same instance: same status and the same (marked) page."""
    direct = platform.http.get(direct_url, timeout=10)
    routed = platform.http_get_app(app)
    if direct.status_code != 200 or routed.status_code != 200 or direct.text != routed.text:
        raise RuntimeError(
            f"direct ({direct.status_code}) and routed ({routed.status_code}) answers differ"
        )


def measure(platform: Platform, budget: Budget, work: Path, runs: int, seconds: int) -> Figure:
    pairs = max(runs, MIN_PAIRS)
    figure = Figure(
        title="router",
        how=(
            f"`wrk --latency -t 1 -c {CONNECTIONS} -d {seconds}s` on the static fixture's page, "
            "once at the instance's published port on 127.0.0.1 and once through the router "
            f"with `Host: <app>.localhost`: {pairs} pairs after a {WARM_UP_SECONDS} s warm-up of "
            "each side, the side that goes first alternating; the last row is the ratio of "
            "requests/s and the latency the router adds (routed minus direct, per pair)."
        ),
        header=["path", "requests/s", "p50 (added)", "p99 (added)"],
        target=f"≥ {MIN_RATIO} of direct throughput and ≤ {MAX_ADDED_P99_MS:.0f} ms added at p99",
    )
    budget.need(pairs * 2 * seconds + 2 * WARM_UP_SECONDS + 60)
    app = new_app(platform, "router")
    try:
        deploy_once(platform, app, "static", "tarball", work / app)
        [instance] = platform.api("GET", f"/apps/{app}").json()["instances"]
        direct = f"http://127.0.0.1:{instance['port']}/"
        _same_page(platform, app, direct)
        host = f"{app}.{platform.settings.domain}"
        router_pids = NginxRouter(platform.settings).worker_pids
        routed = platform.router_url + "/"
        found = compare(direct, routed, host, pairs, seconds, router_pids=router_pids)
        summarize_pairs(figure, found)
    finally:
        delete_app(platform, app)
        shutil.rmtree(work / app, ignore_errors=True)
    return figure
