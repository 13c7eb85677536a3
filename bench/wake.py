"""Sleep and wake: wake to first byte per stack, a stampede of first requests, and density.

*Wake*: an app of each stack's fixture is put to sleep (``POST /apps/<app>/sleep``, then waited
on until the API shows it sleeping and Docker runs none of its containers), then one GET is sent
through the router on a new connection; the time is from ``connect`` to the first byte of the
answer, which must be a 200 from the fixture. *Stampede*: the sleeping static app gets 50 GETs at
the same moment (a barrier, one thread and connection each); the 200s are counted and so are the
instance containers Docker knows of that were not there before. *Density*: many static apps are
deployed (two at a time, each put to sleep as soon as its deploy is live, so at most a handful
are awake), then the host's memory, the control plane's memory, ``GET /api/v1/apps`` and one
wake are measured while the others sleep.
"""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any

import docker

from bench.harness import (
    Budget,
    OutOfTime,
    delete_app,
    marked_source,
    new_app,
    new_marker,
    tarball,
)
from bench.memory import control_plane_memory
from bench.push_to_live import deploy_once
from bench.results import Figure
from bench.stats import percentile, summarize
from tests.integration.platform import Platform

MB = 1024**2
WAKE_STACKS = ("static", "node", "python")
TARGETS = {"static": 1.0, "node": 2.0, "python": 2.0}  # seconds, p50 and p99 (the issue's)
STAMPEDE = 50
SLEEP_TIMEOUT = 60.0
REQUEST_TIMEOUT = 60.0
DEPLOY_TIMEOUT = 300.0
DENSITY_AWAKE_MAX = 5
DENSITY_PARALLEL = 2
LISTINGS = 20
MARKER = re.compile(r"bench-[0-9a-f]{8}")


# ----------------------------------------------------------------------------- helpers


def instance_ids(app: str) -> set[str]:
    """Ids of every instance container of the app Docker knows of, running or not."""
    client = docker.from_env()
    try:
        labels = [f"io.slipway.app={app}", "io.slipway.kind=instance"]
        found = client.containers.list(
            all=True, filters={"label": labels}, sparse=True, ignore_removed=True
        )
        return {c.id for c in found}
    finally:
        client.close()


def running_instances(app: str | None = None, data_dir: Path | None = None) -> int:
    """Running instance containers of the app, or of every app of the platform whose data dir
    is given (its containers mount from there; other platforms on the host are not counted)."""
    client = docker.from_env()
    try:
        labels = ["io.slipway.kind=instance"] + ([f"io.slipway.app={app}"] if app else [])
        # Sparse (the list's own fields, Mounts included), and a container removed while
        # listed is no error: instances come and go all the time here.
        found = client.containers.list(filters={"label": labels}, sparse=True, ignore_removed=True)
    finally:
        client.close()
    if data_dir is None:
        return len(found)
    prefix = str(data_dir) + "/"
    mounts = [[m.get("Source", "") for m in c.attrs.get("Mounts", [])] for c in found]
    return sum(1 for sources in mounts if any(s.startswith(prefix) for s in sources))


# ps:sleep answers that went wrong and were tried again (status and text), for the notes.
SLEEP_RETRIES: list[str] = []


def put_to_sleep(platform: Platform, app: str) -> None:
    """``ps:sleep`` and wait (bounded) until the app is shown sleeping with no container.

    A 409 (a roll holds the app) or a 500 is tried again a few times and remembered in
    SLEEP_RETRIES, so the figure says how often it happened.
    """
    reply = platform.api("POST", f"/apps/{app}/sleep", timeout=SLEEP_TIMEOUT)
    for _ in range(5):
        if reply.status_code not in (409, 500):
            break
        SLEEP_RETRIES.append(f"{reply.status_code} {reply.text.strip()[:120]}")
        time.sleep(1)
        reply = platform.api("POST", f"/apps/{app}/sleep", timeout=SLEEP_TIMEOUT)
    if reply.status_code != 200:
        raise RuntimeError(f"ps:sleep of {app}: {reply.status_code} {reply.text.strip()}")
    deadline = time.monotonic() + SLEEP_TIMEOUT
    while time.monotonic() < deadline:
        shown = platform.api("GET", f"/apps/{app}").json()
        if shown.get("sleeping") and running_instances(app) == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{app} was not asleep {SLEEP_TIMEOUT:.0f} s after ps:sleep")


def first_byte(platform: Platform, app: str) -> tuple[float, int, bytes]:
    """(seconds from connect to the answer's first byte, status, whole answer) of one GET /."""
    request = (
        f"GET / HTTP/1.1\r\nHost: {app}.{platform.settings.domain}\r\nConnection: close\r\n\r\n"
    ).encode()
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", platform.router_port), REQUEST_TIMEOUT) as conn:
        conn.sendall(request)
        data = conn.recv(1)
        elapsed = time.perf_counter() - started
        deadline = time.monotonic() + REQUEST_TIMEOUT
        while data and len(data) < 4 * MB and time.monotonic() < deadline:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return elapsed, status, data


def timed_wake(platform: Platform, app: str, expect: str) -> float:
    """Sleep the app, then the seconds to the first byte of its wake; it must be the fixture."""
    put_to_sleep(platform, app)
    elapsed, status, answer = first_byte(platform, app)
    if status != 200 or expect.encode() not in answer:
        raise RuntimeError(f"the wake of {app} answered {status}: {answer[:300]!r}")
    return elapsed


def deploy_stack(platform: Platform, stack: str, work: Path, prefix: str) -> tuple[str, str]:
    """A new app with the stack's fixture live: (app, the marker it answers with)."""
    app = new_app(platform, prefix)
    deploy_once(platform, app, stack, "tarball", work / f"{prefix}-{stack}")
    _, status, answer = first_byte(platform, app)
    found = MARKER.search(answer.decode(errors="replace"))
    if status != 200 or found is None:
        raise RuntimeError(f"{app} answered {status} right after its deploy: {answer[:300]!r}")
    return app, found.group(0)


# ----------------------------------------------------------------------------- wake


def measure_wake(platform: Platform, budget: Budget, work: Path, wakes: int) -> Figure:
    figure = Figure(
        title="wake",
        how=(
            "Per stack fixture: `ps:sleep` (waited on until the API shows the app sleeping and "
            "Docker runs none of its containers), then one GET through the router on a new "
            "connection, timed from connect to the first byte of the answer (a 200 carrying the "
            f"fixture's text); {wakes} wakes per stack, one after another."
        ),
        header=["stack", "wake to first byte (median, spread)", "p50", "p99", "target", "n"],
        target="p50 and p99 ≤ 1 s for static, ≤ 2 s for node and python",
    )
    met: list[bool] = []
    for stack in WAKE_STACKS:
        app = ""
        times: list[float] = []
        try:
            budget.need(60)
            app, marker = deploy_stack(platform, stack, work, "wake")
            for _ in range(wakes):
                budget.need(15)
                times.append(timed_wake(platform, app, marker))
        except Exception as exc:  # OutOfTime or a failed wake: the stack reports what it has
            figure.notes.append(f"{stack}: stopped after {len(times)} wakes: {exc}")
        finally:
            if app:
                delete_app(platform, app)
            shutil.rmtree(work / f"wake-{stack}", ignore_errors=True)
        if not times:
            figure.add(stack, "not measured", "", "", f"≤ {TARGETS[stack]:.0f} s", 0)
            met.append(False)
            continue
        p50, p99 = percentile(times, 50), percentile(times, 99)
        figure.add(
            stack,
            summarize(times).text(),
            f"{p50:.2f} s",
            f"{p99:.2f} s",
            f"≤ {TARGETS[stack]:.0f} s",
            len(times),
        )
        met.append(len(times) >= 10 and p99 <= TARGETS[stack])
    figure.met = all(met)
    return figure


# ----------------------------------------------------------------------------- stampede


def measure_stampede(platform: Platform, budget: Budget, work: Path) -> Figure:
    figure = Figure(
        title="stampede",
        how=(
            f"The static fixture is deployed and put to sleep; {STAMPEDE} threads, each with a "
            "connection of its own, wait on a barrier and send one GET through the router at the "
            "same moment. Counted: the answers of 200, the instance containers Docker knows of "
            "that were not there before, and the `app_woke` events recorded."
        ),
        header=["requests", "200s", "other answers", "instances started", "app_woke", "slowest"],
        target=f"{STAMPEDE} answers of 200 and exactly one instance started",
    )
    budget.need(60)
    app = ""
    try:
        app, marker = deploy_stack(platform, "static", work, "stampede")
        put_to_sleep(platform, app)
        before = instance_ids(app)
        woke_before = _events(platform, app, "app_woke")
        answers = _stampede(platform, app)
        ok = sum(1 for status, answer, _ in answers if status == 200 and marker in answer)
        others = sorted({str(status) for status, _, _ in answers if status != 200})
        started = len(instance_ids(app) - before)
        woke = _events(platform, app, "app_woke") - woke_before
        slowest = max((t for _, _, t in answers), default=float("nan"))
        figure.add(STAMPEDE, ok, ", ".join(others) or "none", started, woke, f"{slowest:.2f} s")
        figure.met = ok == STAMPEDE and started == 1
    finally:
        if app:
            delete_app(platform, app)
        shutil.rmtree(work / "stampede-static", ignore_errors=True)
    return figure


def _stampede(platform: Platform, app: str) -> list[tuple[int, str, float]]:
    barrier = threading.Barrier(STAMPEDE)
    answers: list[tuple[int, str, float]] = []

    def one() -> None:
        try:
            barrier.wait(timeout=30)
            elapsed, status, answer = first_byte(platform, app)
            answers.append((status, answer.decode(errors="replace"), elapsed))
        except Exception as exc:
            answers.append((0, repr(exc), float("nan")))

    threads = [threading.Thread(target=one, daemon=True) for _ in range(STAMPEDE)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=REQUEST_TIMEOUT + 30)
    return answers


def _events(platform: Platform, app: str, type: str) -> int:
    reply = platform.api("GET", f"/apps/{app}/events", params={"type": type})
    return len(reply.json()) if reply.status_code == 200 else 0


# ----------------------------------------------------------------------------- density


def host_memory_used() -> int:
    """MemTotal - MemAvailable, in bytes."""
    values: dict[str, int] = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, _, rest = line.partition(":")
        values[name] = int(rest.split()[0]) * 1024
    return values["MemTotal"] - values["MemAvailable"]


def measure_density(platform: Platform, budget: Budget, work: Path, count: int) -> Figure:
    figure = Figure(
        title="density",
        how=(
            f"{count} apps asked for: each gets the static fixture (uploads {DENSITY_PARALLEL} at "
            "a time) and is put to sleep as soon as its deploy is live, so at most a handful "
            "are awake at any moment. Then, with all of them asleep: the host's memory in use "
            "(MemTotal - MemAvailable) against the same figure before the apps were made, the "
            "platform's own processes (supervisord's tree: RSS and PSS), "
            f"`GET /api/v1/apps` ({LISTINGS} times) and one wake timed to its first byte."
        ),
        header=["measure", "value"],
        target=f"the apps deployed with at most {DENSITY_AWAKE_MAX} awake; figures reported",
    )
    budget.need(120)
    source = marked_source("static", work / "density-static", new_marker())
    body = tarball(source)
    found = MARKER.search((source / "public" / "index.html").read_text())
    assert found is not None
    marker = found.group(0)
    used_before = host_memory_used()
    _, rss_before, pss_before = control_plane_memory(platform.data_dir)
    apps: list[str] = []
    awake_max = 0
    started = time.monotonic()
    try:
        try:
            awake_max = _deploy_asleep(platform, budget, body, count, apps)
        except OutOfTime as exc:
            figure.notes.append(f"deploys stopped at {len(apps)} apps: {exc}")
        deployed = time.monotonic() - started
        time.sleep(5)  # let the last retirements settle
        awake = running_instances(data_dir=platform.data_dir)
        used_after = host_memory_used()
        processes, rss, pss = control_plane_memory(platform.data_dir)
        listings = [_timed_listing(platform) for _ in range(LISTINGS)]
        wake_app = apps[len(apps) // 2] if apps else ""
        wake = timed_wake_first(platform, wake_app, marker) if wake_app else float("nan")
        n = max(1, len(apps))
        figure.add("apps deployed and asleep", f"{len(apps)} (in {deployed:.0f} s)")
        figure.add("instances running (all apps asleep)", awake)
        figure.add("most instances running at once while deploying", awake_max)
        figure.add(
            "host memory in use, added per sleeping app",
            f"{(used_after - used_before) / n / MB:.2f} MB "
            f"({(used_after - used_before) / MB:.0f} MB for {len(apps)})",
        )
        figure.add(
            "control plane RSS added per sleeping app",
            f"{(rss - rss_before) / n / 1024:.0f} KB",
        )
        figure.add(
            f"control plane ({processes} processes) RSS / PSS",
            f"{rss / MB:.0f} MB / {pss / MB:.0f} MB "
            f"(before the apps: {rss_before / MB:.0f} MB / {pss_before / MB:.0f} MB)",
        )
        figure.add(
            f"GET /api/v1/apps with {len(apps)} apps (p50, p90)",
            f"{percentile(listings, 50):.1f} ms, {percentile(listings, 90):.1f} ms",
        )
        figure.add(f"one wake while {len(apps) - 1} others sleep (first byte)", f"{wake:.2f} s")
        figure.met = len(apps) == count and awake_max <= DENSITY_AWAKE_MAX and awake <= 1
        if SLEEP_RETRIES:
            figure.notes.append(
                f"ps:sleep was tried again {len(SLEEP_RETRIES)} times: "
                + "; ".join(sorted(set(SLEEP_RETRIES)))
            )
    finally:
        # The apps stay: density runs last, and the platform with its data goes right after
        # (deleting hundreds of apps one by one would spend the budget for nothing).
        shutil.rmtree(work / "density-static", ignore_errors=True)
    return figure


def timed_wake_first(platform: Platform, app: str, marker: str) -> float:
    elapsed, status, answer = first_byte(platform, app)
    if status != 200 or marker.encode() not in answer:
        raise RuntimeError(f"the wake of {app} answered {status}: {answer[:300]!r}")
    return elapsed


def _timed_listing(platform: Platform) -> float:
    started = time.perf_counter()
    reply = platform.api("GET", "/apps")
    if reply.status_code != 200:
        raise RuntimeError(f"GET /apps answered {reply.status_code}")
    return (time.perf_counter() - started) * 1000


def _deploy_asleep(
    platform: Platform, budget: Budget, body: bytes, count: int, apps: list[str]
) -> int:
    """Deploy ``count`` apps, at most DENSITY_PARALLEL at once, each slept once live; the most
    instances seen running at once."""
    pending: dict[str, int] = {}  # app -> deploy id
    awake_max = 0
    made = 0
    while made < count or pending:
        budget.need(45)
        while made < count and len(pending) < DENSITY_PARALLEL:
            app = new_app(platform, "dense")
            apps.append(app)
            made += 1
            headers = {"Content-Type": "application/gzip"}
            reply = platform.api("POST", f"/apps/{app}/deploys", data=body, headers=headers)
            if reply.status_code != 202:
                raise RuntimeError(f"upload to {app} refused: {reply.status_code} {reply.text}")
            pending[app] = int(reply.json()["id"])
        for app, deploy_id in list(pending.items()):
            state = _deploy_state(platform, app, deploy_id)
            if state == "succeeded":
                put_to_sleep(platform, app)
                del pending[app]
            elif state in ("failed", "cancelled"):
                raise RuntimeError(f"the deploy of {app} {state}")
        awake_max = max(awake_max, running_instances(data_dir=platform.data_dir))
        time.sleep(0.3)
    return awake_max


def _deploy_state(platform: Platform, app: str, deploy_id: int) -> str:
    reply: Any = platform.api("GET", f"/apps/{app}/deploys/{deploy_id}")
    return str(reply.json()["state"]) if reply.status_code == 200 else "unknown"
