"""Python versions on a running platform: what the app asks for is read as pyenv and uv read it."""

from __future__ import annotations

import time

import pytest

from slipway.services.python_versions import OFFERED
from tests.helpers import wait_until
from tests.integration.platform import Platform
from tests.integration.test_e2e_api import PY_APP, answers, deploy, log_of, new_app, tar_files

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


def test_a_commented_python_version_deploys_and_names_its_python(
    running_platform: Platform,
) -> None:
    app = new_app(running_platform, "pyver")
    offered = OFFERED[-1].version  # "3.11.2"
    minor = ".".join(offered.split(".")[:2])

    done = deploy(running_platform, app, app_asking(minor))

    log = log_of(running_platform, app, done["id"])
    assert done["state"] == "succeeded", log
    assert f"-----> Python {offered} (.python-version asks for {minor})" in log
    wait_until(answers(running_platform, app, "hello from v1"), 60, "the app never answered")
    running_platform.api("DELETE", f"/apps/{app}")


def test_a_python_no_image_offers_fails_at_once_listing_the_offered(
    running_platform: Platform,
) -> None:
    app = new_app(running_platform, "pyver")
    started = time.monotonic()

    failed = deploy(running_platform, app, app_asking("3.99"))

    offered = ", ".join(f"Python {o.version}" for o in OFFERED)
    assert failed["state"] == "failed"
    assert failed["error"] == (
        f".python-version asks for Python 3.99, which Slipway does not offer: it offers "
        f"{offered} (change .python-version)."
    )
    log = log_of(running_platform, app, failed["id"])
    assert "Building with" not in log  # no build container ran
    assert time.monotonic() - started < 60
    running_platform.api("DELETE", f"/apps/{app}")
