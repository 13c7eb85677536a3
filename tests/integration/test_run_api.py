"""One-off commands on a running platform: `slipway run` streams output, exits with the status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import wait_until
from tests.integration.platform import Platform
from tests.integration.test_e2e_api import containers_of, new_app
from tests.integration.test_processes_api import deployed_logging_app, slipway

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def app(running_platform: Platform) -> str:
    return deployed_logging_app(running_platform, "run", "v7")


def run_volumes(platform: Platform) -> list[Path]:
    return sorted((platform.data_dir / "volumes").glob("run-*"))


def test_run_returns_the_exit_status_and_the_output(
    running_platform: Platform, app: str, tmp_path: Path
) -> None:
    result = slipway(running_platform, tmp_path, "run", "-a", app, "sh", "-c", "echo out; exit 3")
    assert result.returncode == 3, result.stderr
    assert result.stdout == "out\n"
    assert "Running sh -c 'echo out; exit 3'" in result.stderr
    wait_until(lambda: not containers_of(app, "run"), 30, "the one-off container is removed")
    wait_until(lambda: not run_volumes(running_platform), 30, "the one-off volume is removed")


def test_run_sees_the_release_and_the_app_environment(
    running_platform: Platform, app: str, tmp_path: Path
) -> None:
    script = 'echo "$SLIPWAY_APP $PWD"; python3 -c "import wsgi; print(wsgi.VERSION)"; id -un'
    result = slipway(running_platform, tmp_path, "run", "-a", app, script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"{app} /mnt/app", "v7", "mop"]


def test_run_over_the_api_streams_json_lines(running_platform: Platform, app: str) -> None:
    response = running_platform.api(
        "POST", f"/apps/{app}/run", json={"command": ["sh", "-c", "echo a; echo b >&2"]}
    )
    assert response.status_code == 200, response.text
    messages = [json.loads(line) for line in response.text.splitlines()]
    # stdout and stderr are separate pipes: both arrive, in either order
    assert sorted(m["line"] for m in messages if "line" in m) == ["a", "b"]
    assert messages[-1]["exit_status"] == 0 and messages[-1]["timed_out"] is False


def test_run_refuses_clearly(running_platform: Platform, app: str, tmp_path: Path) -> None:
    bad = running_platform.api("POST", f"/apps/{app}/run", json={"command": []})
    assert bad.status_code == 422
    empty = new_app(running_platform, "run-new")
    result = slipway(running_platform, tmp_path, "run", "-a", empty, "true")
    assert result.returncode == 1
    assert "deploy it first" in result.stderr
