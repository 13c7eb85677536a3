"""The router figure's order of runs and its verdict, with wrk replaced by a recorder."""

from __future__ import annotations

import math

import pytest

from bench import router
from bench.results import Figure
from bench.router import CpuUse, Pair, compare, summarize_pairs
from bench.wrk import WrkResult

DIRECT, ROUTED = "http://127.0.0.1:5000/", "http://127.0.0.1:8080/"


def _result(rps: float, p99: float = 2.0) -> WrkResult:
    return WrkResult(rps, int(rps), {50.0: 1.0, 99.0: p99}, 0)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, str | None]]:
    """Every wrk run as (side, seconds, host); direct answers 1000 req/s, routed 900."""
    made: list[tuple[str, int, str | None]] = []

    def fake_wrk(url: str, duration: int, connections: int, host: str | None = None) -> WrkResult:
        assert connections == 16
        made.append(("direct" if url == DIRECT else "routed", duration, host))
        return _result(1000.0 if url == DIRECT else 900.0)

    monkeypatch.setattr(router, "run_wrk", fake_wrk)
    return made


def test_both_sides_warm_up_then_the_side_going_first_alternates(calls: list) -> None:
    pairs = compare(DIRECT, ROUTED, "app.localhost", runs=4, seconds=3)

    warm_up = router.WARM_UP_SECONDS
    assert calls[:2] == [("direct", warm_up, None), ("routed", warm_up, "app.localhost")]
    assert [side for side, _, _ in calls[2:]] == [
        *("direct", "routed"),
        *("routed", "direct"),
        *("direct", "routed"),
        *("routed", "direct"),
    ]
    assert all(seconds == 3 for _, seconds, _ in calls[2:])
    assert all(host == "app.localhost" for side, _, host in calls if side == "routed")
    # Whatever went first, each pair holds the right side in the right place.
    assert [round(p.ratio, 3) for p in pairs] == [0.9] * 4


def test_router_cpu_is_only_counted_when_its_workers_are_known(calls: list) -> None:
    [pair] = compare(DIRECT, ROUTED, None, runs=1, seconds=1)
    assert math.isnan(pair.routed_cpu.router)
    assert pair.direct_cpu.machine >= 0

    [pair] = compare(DIRECT, ROUTED, None, runs=1, seconds=1, router_pids=lambda: {1})
    assert pair.routed_cpu.router >= 0
    assert math.isnan(pair.direct_cpu.router)


@pytest.mark.parametrize(
    ("routed_rps", "routed_p99", "met"),
    [(950.0, 2.5, True), (850.0, 2.5, False), (950.0, 3.5, False)],
)
def test_the_verdict_needs_both_the_ratio_and_the_added_p99(
    routed_rps: float, routed_p99: float, met: bool
) -> None:
    cpu = CpuUse(machine=200.0, router=50.0)
    pairs = [Pair(_result(1000.0), _result(routed_rps, routed_p99), cpu, cpu)] * 3
    figure = Figure("router", "test", ["path", "requests/s", "p50", "p99"])

    summarize_pairs(figure, pairs)

    assert figure.met is met
    assert figure.notes == [
        "CPU per request, whole machine: direct 200 µs (200–200, n=3), through the router "
        "200 µs (200–200, n=3); of which the router's nginx 50 µs (50–50, n=3)."
    ]
