"""Control plane: API latency listing many apps and accepting a deploy; 5 deploys at once.

Latencies are client-side wall-clock times of single requests over loopback (a reused
connection), so they include the API's whole request handling and the database.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

from bench.harness import Budget, delete_app, marked_source, new_app, new_marker, tarball
from bench.results import Figure
from bench.stats import percentile, summarize
from tests.integration.platform import Platform

TARGET_MS = 20.0
LISTINGS = 30
CONCURRENT = 5
DEPLOY_TIMEOUT = 300.0


def timed(call: object) -> float:
    """Milliseconds one call takes; it must answer 2xx."""
    started = time.perf_counter()
    reply = call()  # type: ignore[operator]
    elapsed = (time.perf_counter() - started) * 1000
    if not 200 <= reply.status_code < 300:
        raise RuntimeError(f"the API answered {reply.status_code}: {reply.text.strip()[:200]}")
    return elapsed


def accept(platform: Platform, app: str, body: bytes) -> tuple[float, int]:
    """(milliseconds, deploy id) of one upload answered 202."""
    started = time.perf_counter()
    headers = {"Content-Type": "application/gzip"}
    reply = platform.api("POST", f"/apps/{app}/deploys", data=body, headers=headers)
    elapsed = (time.perf_counter() - started) * 1000
    if reply.status_code != 202:
        raise RuntimeError(f"the upload was refused: {reply.status_code} {reply.text.strip()}")
    return elapsed, int(reply.json()["id"])


def wait_all(platform: Platform, deploys: list[tuple[str, int]]) -> dict[str, str]:
    """Poll (bounded) until every deploy is terminal; app → final state."""
    states: dict[str, str] = {}
    deadline = time.monotonic() + DEPLOY_TIMEOUT
    while len(states) < len(deploys) and time.monotonic() < deadline:
        for app, deploy_id in deploys:
            if app not in states:
                state = platform.api("GET", f"/apps/{app}/deploys/{deploy_id}").json()["state"]
                if state in ("succeeded", "failed"):
                    states[app] = state
        time.sleep(0.5)
    return states


def concurrent_accepts(platform: Platform, apps: list[str], body: bytes) -> list[tuple[float, int]]:
    """Upload to every app at the same moment (one thread each)."""
    results: dict[str, tuple[float, int]] = {}
    errors: list[str] = []
    barrier = threading.Barrier(len(apps))

    def one(app: str) -> None:
        try:
            barrier.wait(timeout=30)
            results[app] = accept(platform, app, body)
        except Exception as exc:
            errors.append(f"{app}: {exc}")

    threads = [threading.Thread(target=one, args=(app,), daemon=True) for app in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if errors:
        raise RuntimeError("; ".join(errors))
    return [results[app] for app in apps]


def measure(platform: Platform, budget: Budget, work: Path, count: int) -> Figure:
    figure = Figure(
        title="control plane",
        how=(
            f"{count} apps are created, then `GET /api/v1/apps` is timed {LISTINGS} times; "
            f"{CONCURRENT} static apps get an upload each at the same moment (accept = "
            "`POST .../deploys` until its 202), then one more upload each, one after another, "
            "once the first ones finished."
        ),
        header=["call", "p50", "p90", "spread", "n"],
        target=f"p50 ≤ {TARGET_MS:.0f} ms; {CONCURRENT} concurrent deploys all succeed",
    )
    budget.need(120)
    apps: list[str] = []
    try:
        created = [_create(platform, apps) for _ in range(count)]
        _row(figure, "POST /apps (create)", created)
        listings = [timed(lambda: platform.api("GET", "/apps")) for _ in range(LISTINGS)]
        _row(figure, f"GET /apps ({count} apps)", listings)
        source = marked_source("static", work / "cp-static", new_marker())
        body = tarball(source)
        at_once = concurrent_accepts(platform, apps[:CONCURRENT], body)
        states = wait_all(platform, _deploys(apps, at_once))
        succeeded = sum(1 for s in states.values() if s == "succeeded")
        one_by_one = [accept(platform, app, body) for app in apps[:CONCURRENT]]
        wait_all(platform, _deploys(apps, one_by_one))
        _row(figure, "POST .../deploys (accept, 5 at once)", [ms for ms, _ in at_once])
        _row(figure, "POST .../deploys (accept, one by one)", [ms for ms, _ in one_by_one])
        outcome = f"{succeeded} of {CONCURRENT} succeeded"
        figure.add(f"{CONCURRENT} deploys at once", outcome, "", "", "")
        list_p50 = summarize(listings).median
        accept_p50 = summarize([ms for ms, _ in one_by_one]).median
        figure.met = list_p50 <= TARGET_MS and accept_p50 <= TARGET_MS and succeeded == CONCURRENT
    finally:
        for app in apps:
            delete_app(platform, app)
        shutil.rmtree(work / "cp-static", ignore_errors=True)
    return figure


def _deploys(apps: list[str], accepted: list[tuple[float, int]]) -> list[tuple[str, int]]:
    return [(app, deploy_id) for app, (_, deploy_id) in zip(apps, accepted, strict=False)]


def _create(platform: Platform, apps: list[str]) -> float:
    started = time.perf_counter()
    apps.append(new_app(platform, "cp"))
    return (time.perf_counter() - started) * 1000


def _row(figure: Figure, call: str, values: list[float]) -> None:
    s = summarize(values)
    spread = f"{s.low:.1f}–{s.high:.1f} ms"
    figure.add(call, f"{s.median:.1f} ms", f"{percentile(values, 90):.1f} ms", spread, s.n)
