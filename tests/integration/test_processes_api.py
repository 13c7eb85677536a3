"""Process control on a running platform: supervisorctl through docker exec, via the API and CLI.

The helpers here (an app that logs every request, running the CLI as a subprocess) are shared
with the logs and one-off run tests.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.helpers import wait_until
from tests.integration.platform import SLIPWAY, Platform
from tests.integration.test_e2e_api import containers_of, deploy, log_of, new_app, tar_files

pytestmark = pytest.mark.slow

# A WSGI app for the Debian gunicorn of run-python that writes one line per request to stderr,
# which supervisord sends to /mnt/log/app.log.
LOGGING_APP = """\
import os
import sys

VERSION = {version!r}


def application(environ, start_response):
    print("hit " + environ.get("PATH_INFO", "/"), file=sys.stderr, flush=True)
    body = ("logged by " + VERSION + " pid " + str(os.getpid()) + "\\n").encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""
CLI_TIMEOUT = 120


def logging_app(version: str = "v1") -> bytes:
    return tar_files({"requirements.txt": "", "wsgi.py": LOGGING_APP.format(version=version)})


def deployed_logging_app(platform: Platform, prefix: str, version: str = "v1") -> str:
    app = new_app(platform, prefix)
    result = deploy(platform, app, logging_app(version))
    assert result["state"] == "succeeded", (result, log_of(platform, app, result["id"]))
    return app


def cli_env(platform: Platform, home: Path) -> dict[str, str]:
    """The environment of a user's shell pointed at this platform (no stored login)."""
    return platform.env | {
        "SLIPWAY_URL": platform.api_url,
        "SLIPWAY_TOKEN": platform.admin_token,
        "XDG_CONFIG_HOME": str(home / "config"),
    }


def slipway(
    platform: Platform, home: Path, *args: str, timeout: float = CLI_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SLIPWAY, *args],
        env=cli_env(platform, home),
        cwd=home,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def get_app(platform: Platform, app: str, path: str) -> requests.Response | None:
    try:
        return platform.http_get_app(app, path, timeout=5)
    except requests.RequestException:
        return None


def serves(platform: Platform, app: str) -> Callable[[], bool]:
    def check() -> bool:
        response = get_app(platform, app, "/")
        return response is not None and response.status_code == 200

    return check


def web_process(platform: Platform, app: str) -> dict[str, Any]:
    listed = platform.api("GET", f"/apps/{app}/processes")
    assert listed.status_code == 200, listed.text
    (web,) = [p for p in listed.json()["processes"] if p["name"] == "web.1"]
    return dict(web)


# ----------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def app(running_platform: Platform) -> str:
    return deployed_logging_app(running_platform, "ps")


def test_processes_show_supervisor_state_pid_and_uptime(
    running_platform: Platform, app: str
) -> None:
    # supervisord says STARTING for its startsecs (1 s) after the start, and a deploy can end
    # sooner than that: the instance is live as soon as it answers.
    wait_until(lambda: web_process(running_platform, app)["state"] == "RUNNING", 10, "RUNNING")
    web = web_process(running_platform, app)
    assert web["state"] == "RUNNING" and web["instance_state"] == "live"
    assert isinstance(web["pid"], int) and web["pid"] > 1
    assert web["uptime_seconds"] >= 0 and web["release"] == 1


def test_restart_through_the_api_changes_the_pid(running_platform: Platform, app: str) -> None:
    before = web_process(running_platform, app)["pid"]
    restarted = running_platform.api("POST", f"/apps/{app}/processes/web/restart", json={})
    assert restarted.status_code == 200, restarted.text
    (process,) = restarted.json()["processes"]
    assert process["state"] == "RUNNING" and process["pid"] != before
    assert web_process(running_platform, app)["pid"] == process["pid"]
    wait_until(serves(running_platform, app), 30, "the app answers after a restart")


def test_stop_then_start_one_instance(running_platform: Platform, app: str, tmp_path: Path) -> None:
    stopped = running_platform.api(
        "POST", f"/apps/{app}/processes/web/stop", json={"instance": "web.1"}
    )
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["processes"][0]["state"] == "STOPPED"
    web = web_process(running_platform, app)
    assert (web["state"], web["instance_state"]) == ("STOPPED", "stopped")
    # Out of the router, and the reconciler (a pass on demand) does not bring it back.
    wait_until(lambda: not serves(running_platform, app)(), 30, "the router drops the app")
    reconciled = running_platform.server("reconcile", timeout=120)
    assert reconciled.returncode == 0, reconciled.stderr
    assert web_process(running_platform, app)["state"] == "STOPPED"
    # A host restart: Docker starts the container again (on a new port) and supervisord in it
    # starts web again; the reconciler stops it again and follows the port for ps:start.
    [container] = containers_of(app, "instance")
    container.restart(timeout=2)
    reconciled = running_platform.server("reconcile", timeout=120)
    assert reconciled.returncode == 0, reconciled.stderr
    web = web_process(running_platform, app)
    assert (web["state"], web["instance_state"]) == ("STOPPED", "stopped")
    assert not serves(running_platform, app)()

    started = slipway(running_platform, tmp_path, "ps:start", "web.1", "-a", app)
    assert started.returncode == 0, started.stderr
    assert "web.1: RUNNING" in started.stdout
    wait_until(serves(running_platform, app), 30, "the app answers after ps:start")
    listed = slipway(running_platform, tmp_path, "ps", "-a", app)
    assert listed.returncode == 0, listed.stderr
    assert any(line.split()[:2] == ["web.1", "RUNNING"] for line in listed.stdout.splitlines())


def test_clear_errors_for_unknown_types_and_instances(running_platform: Platform, app: str) -> None:
    missing_type = running_platform.api("POST", f"/apps/{app}/processes/worker/restart")
    assert missing_type.status_code == 404
    assert "no worker instances" in missing_type.json()["error"]
    missing_instance = running_platform.api(
        "POST", f"/apps/{app}/processes/web/stop", json={"instance": 7}
    )
    assert missing_instance.status_code == 404
    empty = new_app(running_platform, "ps-empty")
    nothing = running_platform.api("POST", f"/apps/{empty}/processes/web/restart")
    assert nothing.status_code == 404 and "deploy it first" in nothing.json()["error"]
    # nothing was left stopped by the refused calls
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and web_process(running_platform, app)["state"] != "RUNNING":
        time.sleep(0.5)
    assert web_process(running_platform, app)["state"] == "RUNNING"
