"""Python versions on a running platform: what the app asks for is read as pyenv and uv read it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from slipway.services.python_versions import OFFERED
from tests.helpers import wait_until
from tests.integration.platform import Platform
from tests.integration.test_e2e_api import PY_APP, answers, deploy, log_of, new_app, tar_files
from tests.integration.test_processes_api import slipway

pytestmark = pytest.mark.slow

COMMENTED = "# The Python this app runs on (pyenv and uv skip this line)\n\n{version}\n"


def app_asking(version: str) -> bytes:
    return tar_files(
        {
            ".python-version": COMMENTED.format(version=version),
            "requirements.txt": "",
            "wsgi.py": "VERSION = 'v1'\n" + PY_APP,
        }
    )


@pytest.mark.parametrize("line", ["3.13", "3.14"])
def test_an_app_runs_on_the_python_its_commented_python_version_asks_for(
    running_platform: Platform, tmp_path: Path, line: str
) -> None:
    [offered] = [o for o in OFFERED if o.line == line]
    app = new_app(running_platform, "pyver")

    done = deploy(running_platform, app, app_asking(line))

    log = log_of(running_platform, app, done["id"])
    assert done["state"] == "succeeded", log
    assert f"-----> Python {line} (.python-version asks for {line})" in log
    assert f"Building with slipway/build-{offered.variant}:latest" in log
    wait_until(answers(running_platform, app, "hello from v1"), 60, "the app never answered")
    shown = running_platform.api("GET", f"/apps/{app}").json()
    assert shown["release"]["stack"] == offered.variant
    # The instances and one-off runs run the same interpreter the build made the venv with.
    script = "python3 --version; .venv/bin/python --version"
    ran = slipway(running_platform, tmp_path, "run", "-a", app, script)
    assert ran.returncode == 0, ran.stderr
    [interpreter, venv] = ran.stdout.splitlines()
    assert interpreter == venv and interpreter.startswith(f"Python {line}."), ran.stdout
    running_platform.api("DELETE", f"/apps/{app}")


def test_a_python_no_image_offers_fails_at_once_listing_the_offered(
    running_platform: Platform,
) -> None:
    app = new_app(running_platform, "pyver")
    started = time.monotonic()

    failed = deploy(running_platform, app, app_asking("3.99"))

    offered = ", ".join(f"Python {o.line}" for o in OFFERED)
    assert failed["state"] == "failed"
    assert failed["error"] == (
        f".python-version asks for Python 3.99, which Slipway does not offer: it offers "
        f"{offered} (change .python-version)."
    )
    log = log_of(running_platform, app, failed["id"])
    assert "Building with" not in log  # no build container ran
    assert time.monotonic() - started < 60
    running_platform.api("DELETE", f"/apps/{app}")
