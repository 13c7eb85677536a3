"""The lean control plane on a platform of its own: its memory at rest, and the API answering
while a hundred log followers stay open (each a greenlet of the gevent API process, not a thread).

The terminal websocket under the real platform is tested in test_run_terminal.py.
"""

from __future__ import annotations

import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests

from bench.control_plane_rest import rest_memory
from tests.integration.platform import Platform, own_platform
from tests.integration.test_e2e_api import deploy, log_of, start_deploy, wait_deploy
from tests.integration.test_processes_api import deployed_logging_app, logging_app

pytestmark = pytest.mark.slow

MB = 1024**2
REST_LIMIT_MB = 250
IDLE_SECONDS = 5.0
FOLLOWERS = 100
DEPLOY_FOLLOWERS = 20
OPEN_TIMEOUT = 60.0  # seconds for all followers to get their first bytes
ANSWER_LIMIT = 2.0  # seconds a listing may take while the followers are open
FOLLOW_WAIT = 30.0  # seconds for every follower to see a new line
STOP_LIMIT = 25.0  # seconds a restart of the API may take with the followers open (SIGKILL at 30)


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    with own_platform() as started:
        yield started


@pytest.fixture(scope="module")
def logging_app_name(platform: Platform) -> str:
    return deployed_logging_app(platform, "lean")


def test_the_control_plane_at_rest_stays_under_250_mb(
    platform: Platform, logging_app_name: str
) -> None:
    assert platform.api("GET", f"/apps/{logging_app_name}").status_code == 200
    time.sleep(IDLE_SECONDS)

    processes = rest_memory(platform)

    programs = {p.program for p in processes}
    assert programs == {"supervisord", "redis", "router", "api", "worker"}, processes
    total = sum(p.rss for p in processes) / MB
    shown = ", ".join(f"{p.program} {p.pid} {p.rss / MB:.0f} MB" for p in processes)
    assert total <= REST_LIMIT_MB, f"{total:.0f} MB RSS at rest: {shown}"


@dataclass
class Follower:
    """One `GET .../logs?follow=1` on a connection of its own, read in a thread of the test."""

    url: str
    token: str
    lines: list[str] = field(default_factory=list)
    opened: threading.Event = field(default_factory=threading.Event)
    error: str | None = None
    response: requests.Response | None = None

    def run(self, stop: threading.Event) -> None:
        with requests.Session() as http:
            http.trust_env = False
            try:
                headers = {"Authorization": f"Bearer {self.token}"}
                self.response = http.get(
                    self.url, headers=headers, stream=True, timeout=(10, FOLLOW_WAIT + 30)
                )
                self.opened.set()
                for line in self.response.iter_lines(decode_unicode=True):
                    self.lines.append(line)
                    if stop.is_set():
                        break
            except (requests.RequestException, AttributeError) as exc:
                if not stop.is_set():
                    self.error = str(exc)
            finally:
                self.opened.set()


def _follow_deploy_log(platform: Platform, app: str, deploy_id: int) -> list[str]:
    """The deploy's log as DEPLOY_FOLLOWERS clients following it at once each got it."""
    got: list[str] = []
    path = f"/apps/{app}/deploys/{deploy_id}/log"

    def one() -> None:
        with requests.Session() as http:  # a connection of its own
            http.trust_env = False
            url = f"{platform.api_url}/api/v1{path}"
            headers = {"Authorization": f"Bearer {platform.admin_token}"}
            reply = http.get(url, headers=headers, timeout=300)
            if reply.status_code == 200:
                got.append(reply.text)

    threads = [threading.Thread(target=one, daemon=True) for _ in range(DEPLOY_FOLLOWERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return got


def _hit(platform: Platform, app: str, path: str) -> None:
    reply = platform.http_get_app(app, path)
    assert reply.status_code == 200, reply.text


def test_a_hundred_log_followers_do_not_stop_the_api(
    platform: Platform, logging_app_name: str
) -> None:
    app = logging_app_name
    url = f"{platform.api_url}/api/v1/apps/{app}/logs?follow=1&tail=0"
    followers = [Follower(url, platform.admin_token) for _ in range(FOLLOWERS)]
    stop = threading.Event()
    threads = [threading.Thread(target=f.run, args=(stop,), daemon=True) for f in followers]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + OPEN_TIMEOUT
        for follower in followers:
            follower.opened.wait(max(0.0, deadline - time.monotonic()))
        broken = [f.error for f in followers if f.error or f.response is None]
        assert not broken, f"{len(broken)} followers did not open: {broken[:3]}"
        assert {f.response.status_code for f in followers if f.response} == {200}

        took = []
        for _ in range(10):
            started = time.monotonic()
            assert platform.api("GET", "/apps", timeout=10).status_code == 200
            took.append(time.monotonic() - started)
        assert max(took) <= ANSWER_LIMIT, f"listings took {took}"

        marker = f"/lean-{secrets.token_hex(4)}"
        _hit(platform, app, marker)
        wanted = f"hit {marker}"
        deadline = time.monotonic() + FOLLOW_WAIT
        while time.monotonic() < deadline:
            if all(any(wanted in line for line in f.lines) for f in followers):
                break
            time.sleep(0.5)
        missing = [f for f in followers if not any(wanted in line for line in f.lines)]
        assert not missing, f"{len(missing)} of {FOLLOWERS} followers never saw {wanted!r}"

        # A deploy goes through with the followers open, its build log followed to the end by
        # DEPLOY_FOLLOWERS more clients at once.
        accepted = start_deploy(platform, app, logging_app("v2"))
        assert accepted.status_code == 202, accepted.text
        deploy_id = accepted.json()["id"]
        streamed = _follow_deploy_log(platform, app, deploy_id)
        done = wait_deploy(platform, app, deploy_id)
        assert done["state"] == "succeeded", log_of(platform, app, deploy_id)
        whole = log_of(platform, app, deploy_id)
        assert len(streamed) == DEPLOY_FOLLOWERS
        # Each got the log as it grew, up to the deploy's end (the stored log may add a last word).
        assert all(text.strip() and whole.startswith(text) for text in streamed), (
            f"a followed build log differs from the stored one: {streamed[:2]!r} vs {whole!r}"
        )
    finally:
        stop.set()
        for follower in followers:
            if follower.response is not None:
                follower.response.close()
        for thread in threads:
            thread.join(timeout=5)


def test_the_api_restarts_promptly_with_followers_open(
    platform: Platform, logging_app_name: str
) -> None:
    url = f"{platform.api_url}/api/v1/apps/{logging_app_name}/logs?follow=1&tail=0"
    followers = [Follower(url, platform.admin_token) for _ in range(20)]
    stop = threading.Event()
    threads = [threading.Thread(target=f.run, args=(stop,), daemon=True) for f in followers]
    for thread in threads:
        thread.start()
    for follower in followers:
        follower.opened.wait(OPEN_TIMEOUT)
    conf = platform.data_dir / "control-plane" / "supervisord.conf"
    try:
        started = time.monotonic()
        restart = subprocess.run(
            ["supervisorctl", "-c", str(conf), "restart", "api"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        took = time.monotonic() - started
        assert restart.returncode == 0, restart.stdout + restart.stderr
        assert took <= STOP_LIMIT, f"the API took {took:.1f} s to restart"
        log = (platform.data_dir / "control-plane" / "logs" / "api.log").read_text()
        assert "signal 15: stopping" in log
        assert "did not finish in time" not in log
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if platform.api("GET", "/apps", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        assert platform.api("GET", "/apps").status_code == 200
        assert deploy(platform, logging_app_name, logging_app("v3"))["state"] == "succeeded"
    finally:
        stop.set()
        for follower in followers:
            if follower.response is not None:
                follower.response.close()
        for thread in threads:
            thread.join(timeout=5)
