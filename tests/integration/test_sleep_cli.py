"""Sleep as a user drives it: `slipway apps:update --sleep-after`, `ps:sleep`, `ps`, `apps:info`
and `ps:wake` run as subprocesses against a whole platform, a static app served through the
router (nginx) and its containers counted with Docker."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.helpers import wait_until
from tests.integration.platform import SLIPWAY, Platform
from tests.integration.test_e2e_api import (
    containers_of,
    new_app,
    start_deploy,
    tar_files,
    wait_deploy,
)

pytestmark = pytest.mark.slow

PAGE = "<h1>asleep or awake</h1>\n"
WAKE_TIMEOUT = 60  # seconds a request that wakes the app may take (client side)


def slipway(platform: Platform, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "SLIPWAY_URL": platform.api_url,
        "SLIPWAY_TOKEN": platform.admin_token,
    }
    return subprocess.run(
        [SLIPWAY, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args}:\n{result.stdout}{result.stderr}"
    return result.stdout


def fields(output: str) -> dict[str, str]:
    found = {}
    for line in output.splitlines():
        key, sep, value = line.partition(":")
        if sep and " " not in key:
            found[key] = value.strip()
    return found


def running(app: str) -> int:
    return sum(1 for c in containers_of(app, "instance") if c.status == "running")


def events(platform: Platform, app: str, kind: str) -> list[dict[str, Any]]:
    reply = platform.api("GET", f"/apps/{app}/events", params={"type": kind})
    assert reply.status_code == 200, reply.text
    return list(reply.json())


def get(platform: Platform, app: str) -> requests.Response:
    with requests.Session() as http:
        http.trust_env = False
        return http.get(
            platform.router_url + "/",
            headers={"Host": f"{app}.{platform.settings.domain}"},
            timeout=WAKE_TIMEOUT,
        )


def test_sleep_and_wake_from_the_command_line(running_platform: Platform, tmp_path: Path) -> None:
    platform = running_platform
    app = new_app(platform, "sleepy")
    try:
        accepted = start_deploy(platform, app, tar_files({"index.html": PAGE}))
        assert accepted.status_code == 202, accepted.text
        assert wait_deploy(platform, app, accepted.json()["id"])["state"] == "succeeded"

        updated = fields(
            ok(slipway(platform, tmp_path, "apps:update", "-a", app, "--sleep-after", "15m"))
        )
        assert updated["sleep_after"] == "15m"
        shown = fields(ok(slipway(platform, tmp_path, "apps:info", "-a", app)))
        assert (shown["state"], shown["sleep_after"]) == ("running", "15m")
        assert "Sleeps after 15m without a request." in ok(
            slipway(platform, tmp_path, "ps", "-a", app)
        )

        said = ok(slipway(platform, tmp_path, "ps:sleep", "-a", app))
        assert (
            said.strip()
            == f"{app} is sleeping: the next request wakes it (or `slipway ps:wake -a {app}`)."
        )
        assert running(app) == 0  # the answer came once the instance was gone
        assert [e["message"] for e in events(platform, app, "app_slept")] == [
            f"{app} went to sleep: requested."
        ]
        assert (
            fields(ok(slipway(platform, tmp_path, "apps:info", "-a", app)))["state"] == "sleeping"
        )
        listed = ok(slipway(platform, tmp_path, "ps", "-a", app))
        assert "State: sleeping (web stopped); the next request wakes it." in listed

        started = time.monotonic()
        woken = get(platform, app)
        assert (woken.status_code, woken.text) == (200, PAGE), woken.text
        assert time.monotonic() - started < WAKE_TIMEOUT
        assert fields(ok(slipway(platform, tmp_path, "apps:info", "-a", app)))["state"] == "running"
        assert running(app) == 1
        assert len(events(platform, app, "app_woke")) == 1

        ok(slipway(platform, tmp_path, "ps:sleep", "-a", app))
        wait_until(lambda: running(app) == 0, 30, f"{app} still runs after ps:sleep")
        awake = ok(slipway(platform, tmp_path, "ps:wake", "-a", app))
        assert awake.strip() == f"{app} is awake: web.1 live."
        assert running(app) == 1
        assert get(platform, app).status_code == 200
        again = ok(slipway(platform, tmp_path, "ps:wake", "-a", app))  # awake already: as it is
        assert again.strip() == f"{app} is awake: web.1 live." and running(app) == 1

        default = fields(
            ok(slipway(platform, tmp_path, "apps:update", "-a", app, "--sleep-after", "default"))
        )
        assert default["sleep_after"] == "never (platform default)"
        too_short = slipway(platform, tmp_path, "apps:update", "-a", app, "--sleep-after", "5s")
        assert too_short.returncode == 1
        assert "sleep_after is at least 10s (or never), not 5s." in too_short.stderr
    finally:
        platform.api("DELETE", f"/apps/{app}", timeout=120)


def test_an_app_never_deployed_cannot_sleep(running_platform: Platform, tmp_path: Path) -> None:
    app = new_app(running_platform, "sleepless")
    try:
        refused = slipway(running_platform, tmp_path, "ps:sleep", "-a", app)
        assert refused.returncode == 1
        assert f"{app} has no release yet; there is nothing to put to sleep." in refused.stderr
    finally:
        running_platform.api("DELETE", f"/apps/{app}", timeout=120)
