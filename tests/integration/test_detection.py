"""Stack detection on a running platform: a source no image recognises fails at once, clearly."""

from __future__ import annotations

import time

import pytest

from slipway.services.stacks import STACKS
from tests.helpers import wait_until
from tests.integration.platform import Platform
from tests.integration.test_e2e_api import (
    answers,
    containers_of,
    deploy,
    log_of,
    new_app,
    source_of,
)

pytestmark = pytest.mark.slow

STATIC_PAGE = "hello from a static site"  # tests/fixtures/apps/static/public/index.html


def test_a_go_app_fails_at_once_and_the_running_release_keeps_serving(
    running_platform: Platform,
) -> None:
    app = new_app(running_platform, "go")
    first = deploy(running_platform, app, source_of("static"))
    assert first["state"] == "succeeded", log_of(running_platform, app, first["id"])
    wait_until(answers(running_platform, app, STATIC_PAGE), 60, "the site never answered")

    started = time.monotonic()
    failed = deploy(running_platform, app, source_of("go"))
    took = time.monotonic() - started

    titles = [stack.title for stack in STACKS]
    builds = f"{', '.join(titles[:-1])} and {titles[-1]}"
    assert failed["state"] == "failed"
    assert failed["error"] == (
        f"No build image recognises this app: found go.mod; Slipway builds {builds}."
    )
    log = log_of(running_platform, app, failed["id"])
    assert "found go.mod" in log
    assert "Building with" not in log and "app detected" not in log  # no build image ran
    assert containers_of(app, "build") == []
    assert took < 60, f"the deploy took {took:.0f} s to fail"

    assert answers(running_platform, app, STATIC_PAGE)()
    shown = running_platform.api("GET", f"/apps/{app}").json()
    assert shown["release"]["version"] == 1
    assert [i["state"] for i in shown["instances"]] == ["live"]
    running_platform.api("DELETE", f"/apps/{app}")
