"""App logs on a running platform: tail, `slipway logs -f` following new lines, kept old logs."""

from __future__ import annotations

import queue
import secrets
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import wait_until
from tests.integration.platform import SLIPWAY, Platform
from tests.integration.test_e2e_api import deploy
from tests.integration.test_processes_api import (
    cli_env,
    deployed_logging_app,
    get_app,
    logging_app,
)

pytestmark = pytest.mark.slow

FOLLOW_WAIT = 30


def tail(platform: Platform, app: str, lines: int = 100) -> list[str]:
    response = platform.api("GET", f"/apps/{app}/logs", params={"tail": lines})
    assert response.status_code == 200, response.text
    return response.text.splitlines()


def test_tail_merges_instances_with_a_prefix(running_platform: Platform) -> None:
    app = deployed_logging_app(running_platform, "logs")
    marker = secrets.token_hex(4)
    assert get_app(running_platform, app, f"/{marker}") is not None
    expected = f"web.1 | hit /{marker}"
    wait_until(lambda: expected in tail(running_platform, app), 20, "the request is logged")
    assert len(tail(running_platform, app, 1)) == 1
    refused = running_platform.api("GET", f"/apps/{app}/logs", params={"tail": "many"})
    assert refused.status_code == 422


def _pump(process: subprocess.Popen[str], lines: queue.Queue[str]) -> None:
    for line in process.stdout or []:
        lines.put(line)


def test_logs_follow_prints_new_lines(running_platform: Platform, tmp_path: Path) -> None:
    app = deployed_logging_app(running_platform, "follow")
    command = [SLIPWAY, "logs", "-f", "--tail", "5", "-a", app]
    env = cli_env(running_platform, tmp_path)
    follower = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_pump, args=(follower, lines))
    reader.start()
    try:
        for n in range(3):
            marker = f"/follow-{n}-{secrets.token_hex(3)}"
            assert get_app(running_platform, app, marker) is not None
            wanted = f"web.1 | hit {marker}\n"
            deadline = time.monotonic() + FOLLOW_WAIT
            seen: list[str] = []
            while wanted not in seen and time.monotonic() < deadline:
                try:
                    seen.append(lines.get(timeout=1))
                except queue.Empty:
                    continue
            assert wanted in seen, f"{wanted!r} not followed; saw {seen}"
        assert follower.poll() is None  # still following
    finally:
        follower.terminate()
        follower.wait(timeout=30)
        reader.join(timeout=30)


def test_logs_of_the_replaced_release_stay_readable(running_platform: Platform) -> None:
    app = deployed_logging_app(running_platform, "oldlogs", "v1")
    marker = secrets.token_hex(4)
    assert get_app(running_platform, app, f"/{marker}") is not None
    wait_until(
        lambda: f"web.1 | hit /{marker}" in tail(running_platform, app), 20, "v1 logs the hit"
    )
    result = deploy(running_platform, app, logging_app("v2"))
    assert result["state"] == "succeeded", result
    lines = tail(running_platform, app)
    assert f"web.1 (old v1) | hit /{marker}" in lines
    assert f"web.1 | hit /{marker}" not in lines  # the new instance has a fresh log
    kept = list((running_platform.data_dir / "logs").glob(f"{app}-*/*-web.1-v1-*/log/app.log"))
    assert len(kept) == 1
