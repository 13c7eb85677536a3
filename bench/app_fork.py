"""apps:fork: the time from ``POST /apps/<app>/fork`` until the fork answers 200 through the
router with its source's data, for an app whose space holds 900 MB and for one whose space is
empty, in the same run.

Each source app is a small Python app that serves the content of a file in its space (slot
``data``); the full space is filled with incompressible data by a one-off run and synced before
anything is timed. Each fork is destroyed with its space before the next run.
"""

from __future__ import annotations

import json
import time

import requests

from bench.harness import Budget, delete_app, new_app, new_marker
from bench.results import Figure
from bench.stats import summarize
from tests.integration.platform import Platform
from tests.integration.test_e2e_api import deploy, tar_files

FILL_MB = 900  # in a 1G space: what fits beside ext4's own journal and metadata
ANSWER_TIMEOUT = 120.0
POLL = 0.05
FLAT = 2.0  # the full space's median may be at most this many times the empty one's...
SLACK = 3.0  # ...or this many seconds above it

APP = """\
def application(environ, start_response):
    try:
        with open("/spaces/data/tree/marker") as marker:
            body = marker.read().encode()
    except FileNotFoundError:  # before the space is attached: still an answer
        body = b"no space yet"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""


def _run(platform: Platform, app: str, command: str) -> None:
    """A one-off command of the app, to the end; RuntimeError unless it exits 0."""
    answer = platform.api("POST", f"/apps/{app}/run", json={"command": command}, timeout=900)
    lines = answer.text.strip().splitlines()
    last = json.loads(lines[-1]) if answer.status_code == 200 and lines else {}
    if last.get("exit_status") != 0:
        raise RuntimeError(
            f"`{command}` in {app} failed: {answer.status_code} {answer.text[-300:]}"
        )


def _source(platform: Platform, filled: bool) -> tuple[str, str]:
    """A deployed app with a 1G space in slot data (900 MB of data, or none); its name and the
    marker it answers with."""
    app = new_app(platform, "bfork")
    deployed = deploy(platform, app, tar_files({"requirements.txt": "", "wsgi.py": APP}))
    if deployed["state"] != "succeeded":
        raise RuntimeError(f"deploying {app} failed: {deployed.get('error')}")
    made = platform.api("POST", "/spaces", json={"name": f"{app}-data", "size": "1G"})
    if made.status_code != 201:
        raise RuntimeError(f"creating the space of {app} failed: {made.text}")
    body = {"app": app, "slot": "data"}
    attached = platform.api("POST", f"/spaces/{app}-data/attach", json=body)
    if attached.status_code != 201:
        raise RuntimeError(f"attaching the space of {app} failed: {attached.text}")
    marker = new_marker()
    fill = f"head -c {FILL_MB}M /dev/urandom > /spaces/data/tree/blob && " if filled else ""
    _run(platform, app, f"{fill}printf {marker} > /spaces/data/tree/marker && sync")
    if not _answers(platform, app, marker, time.monotonic() + ANSWER_TIMEOUT):
        raise RuntimeError(f"{app} did not answer with its space's marker")
    return app, marker


def _answers(platform: Platform, app: str, marker: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            response = platform.http_get_app(app, "/", timeout=5)
            if response.status_code == 200 and response.text == marker:
                return True
        except requests.RequestException:
            pass
        time.sleep(POLL)
    return False


def _fork_seconds(platform: Platform, app: str, marker: str, number: int) -> tuple[float, float]:
    """Seconds until the API answered and until the fork answered 200 with the marker."""
    fork = f"{app}-f{number}"
    started = time.monotonic()
    made = platform.api("POST", f"/apps/{app}/fork", json={"name": fork}, timeout=120)
    answered = time.monotonic() - started
    try:
        if made.status_code != 201:
            raise RuntimeError(f"forking {app} failed: {made.status_code} {made.text}")
        if not _answers(platform, fork, marker, started + ANSWER_TIMEOUT):
            raise RuntimeError(f"the fork {fork} did not answer in {ANSWER_TIMEOUT:.0f} s")
        return answered, time.monotonic() - started
    finally:
        platform.api("DELETE", f"/apps/{fork}?delete_spaces=1", timeout=120)


def measure(platform: Platform, budget: Budget, runs: int) -> Figure:
    figure = Figure(
        title="app-fork",
        how=(
            "`POST /apps/<app>/fork` (what `slipway apps:fork` sends) of a small Python app with "
            f"a 1 GB btrfs space in slot `data`, holding {FILL_MB} MB of incompressible data or "
            "nothing: seconds until the API answered (the app, its release and the forked space "
            "made) and until the fork answered 200 through the router with its source's data "
            "(its instance started on the forked space). Medians of the runs; each fork is "
            "destroyed with its space before the next."
        ),
        header=["space of the source", "API answered", "fork answers 200"],
        target=(
            f"flat: the fork of the full space answers within {FLAT:g}× (or {SLACK:g} s above) "
            "the time of the fork of the empty one"
        ),
    )
    medians: dict[str, float] = {}
    for filled, label in ((False, "1 GB, empty"), (True, f"1 GB, {FILL_MB} MB used")):
        budget.need(60 + 20 * runs)
        app, marker = _source(platform, filled)
        try:
            times = [_fork_seconds(platform, app, marker, n) for n in range(1, runs + 1)]
        finally:
            platform.api("DELETE", f"/apps/{app}?delete_spaces=1", timeout=120)
            delete_app(platform, app)
        api, answers = summarize([t[0] for t in times]), summarize([t[1] for t in times])
        medians[label] = answers.median
        figure.add(label, api.text("s", 2), answers.text("s", 2))
    empty, full = medians.get("1 GB, empty"), medians.get(f"1 GB, {FILL_MB} MB used")
    if empty is not None and full is not None:
        figure.met = full <= max(FLAT * empty, empty + SLACK)
    return figure
