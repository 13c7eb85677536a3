"""Cancelling a deploy on the real platform: the build container and volumes go, the release
that was live keeps serving, and the app's deploy lock is free again."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from slipway.volumes import get_volume_provider
from tests.helpers import wait_until
from tests.integration.platform import SLIPWAY, Platform
from tests.integration.test_e2e_api import (
    answers,
    containers_of,
    deploy,
    new_app,
    source_of,
    start_deploy,
    tar_files,
)

pytestmark = pytest.mark.slow


def page(version: str) -> bytes:
    return tar_files({"index.html": f"<h1>cancel test {version}</h1>\n"})


def deploy_state(platform: Platform, app: str, deploy_id: int) -> str:
    return str(platform.api("GET", f"/apps/{app}/deploys/{deploy_id}").json()["state"])


def build_volumes(platform: Platform, deploy_id: int) -> list[str]:
    names = {f"build-{deploy_id}-input", f"build-{deploy_id}-output"}
    return [v.name for v in get_volume_provider(platform.settings).list() if v.name in names]


def start_slow_build(platform: Platform, app: str) -> int:
    """A deploy whose build never ends (the never-ends fixture), seen running in its container."""
    accepted = start_deploy(platform, app, source_of("never-ends"))
    assert accepted.status_code == 202, accepted.text
    deploy_id = int(accepted.json()["id"])
    log = f"/apps/{app}/deploys/{deploy_id}/log?follow=0"
    wait_until(
        lambda: "still building" in platform.api("GET", log).text,
        300,
        "the slow build never ran",
    )
    assert deploy_state(platform, app, deploy_id) == "building"
    assert len(containers_of(app, "build")) == 1
    assert len(build_volumes(platform, deploy_id)) == 2
    return deploy_id


def cli(platform: Platform, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "SLIPWAY_URL": platform.api_url,
        "SLIPWAY_TOKEN": platform.admin_token,
    }
    return subprocess.run(
        [SLIPWAY, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_a_deploy_cancelled_while_building_leaves_nothing_and_the_old_release_serves(
    running_platform: Platform, tmp_path: Path
) -> None:
    app = new_app(running_platform, "cancel")
    assert deploy(running_platform, app, page("v1"))["state"] == "succeeded"
    wait_until(answers(running_platform, app, "cancel test v1"), 30, "v1 never answered")
    deploy_id = start_slow_build(running_platform, app)

    result = cli(running_platform, tmp_path, "deploys:cancel", "-a", app)

    assert result.returncode == 0, result.stderr
    assert f"Deploy {deploy_id} of {app} is cancelled" in result.stdout
    shown = running_platform.api("GET", f"/apps/{app}/deploys/{deploy_id}").json()
    assert shown["state"] == "cancelled" and shown["error"] == "Cancelled by admin."
    # The worker notices within a heartbeat, stops the build and removes its volumes.
    wait_until(lambda: containers_of(app, "build") == [], 60, "the build container stayed")
    wait_until(lambda: build_volumes(running_platform, deploy_id) == [], 60, "volumes stayed")
    log = running_platform.api("GET", f"/apps/{app}/deploys/{deploy_id}/log?follow=0").text
    wait_until(
        lambda: (
            "The deploy was cancelled"
            in running_platform.api("GET", f"/apps/{app}/deploys/{deploy_id}/log?follow=0").text
        ),
        60,
        "the worker never said it stopped",
    )
    assert "Deploy cancelled by admin while building" in log
    assert running_platform.http_get_app(app).text == "<h1>cancel test v1</h1>\n"
    shown_app = running_platform.api("GET", f"/apps/{app}").json()
    assert shown_app["release"]["version"] == 1
    events = running_platform.api("GET", f"/apps/{app}/events").json()
    assert [e["data"]["deploy_id"] for e in events if e["type"] == "deploy_cancelled"] == [
        deploy_id
    ]
    assert deploy_state(running_platform, app, deploy_id) == "cancelled"  # the worker kept it

    # The app's deploy lock is free: the next deploy starts at once and goes live.
    started = time.monotonic()
    assert deploy(running_platform, app, page("v2"))["state"] == "succeeded"
    assert time.monotonic() - started < 120
    wait_until(answers(running_platform, app, "cancel test v2"), 30, "v2 never answered")

    again = running_platform.api("POST", f"/apps/{app}/deploys/{deploy_id}/cancel")
    assert again.status_code == 409
    assert again.json()["error"] == (
        f"Deploy {deploy_id} already ended (cancelled); "
        "only a queued or running deploy can be cancelled."
    )
    running_platform.api("DELETE", f"/apps/{app}")
