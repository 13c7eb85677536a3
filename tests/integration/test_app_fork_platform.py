"""apps:fork and assets volumes on a running platform (btrfs spaces, Docker, nginx), through the
`slipway` CLI and the router: a fork answers with its source's data within seconds, the two
diverge, the fork outlives its source's spaces; assets are read-only at /mnt/assets."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.helpers import wait_until
from tests.integration.platform import Platform
from tests.integration.test_e2e_api import deploy, log_of, new_app, tar_files
from tests.integration.test_processes_api import slipway

pytestmark = pytest.mark.slow

FORK_SECONDS = 60  # from `apps:fork` to the fork answering; measured a few seconds here

# Serves the space's state file (/), writes it (/write?TEXT) and reports what it sees of its
# assets (/assets): the logo's text, whether /mnt/app/assets exists, and how a write fails.
APP = """\
import errno
import json
import os

STATE = "/spaces/data/tree/state"
LOGO = "/mnt/assets/img/logo.txt"


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/write":
        with open(STATE, "w") as out:
            out.write(environ["QUERY_STRING"])
        body = "written"
    elif path == "/assets":
        try:
            with open("/mnt/assets/img/new.txt", "w") as out:
                out.write("x")
            write = "written"
        except OSError as exc:
            write = errno.errorcode.get(exc.errno, str(exc.errno))
        with open(LOGO) as logo:
            body = json.dumps(
                {"logo": logo.read(), "in_app": os.path.exists("/mnt/app/assets"), "write": write}
            )
    else:
        try:
            with open(STATE) as state:
                body = state.read()
        except FileNotFoundError:
            body = "(nothing yet)"
    data = body.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]
"""


def source() -> bytes:
    return tar_files({"requirements.txt": "", "wsgi.py": APP, "assets/img/logo.txt": "the logo\n"})


def ok(platform: Platform, home: Path, *args: str) -> str:
    result = slipway(platform, home, *args)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout + result.stderr


def get(platform: Platform, app: str, path: str = "/") -> str:
    response = platform.http_get_app(app, path, timeout=10)
    assert response.status_code == 200, (app, path, response.status_code, response.text)
    return str(response.text)


def serves(platform: Platform, app: str, text: str) -> bool:
    try:
        response = platform.http_get_app(app, "/", timeout=5)
    except OSError:
        return False
    return response.status_code == 200 and response.text == text


def current_version(platform: Platform, app: str) -> int | None:
    release = platform.api("GET", f"/apps/{app}").json().get("release") or {}
    return release.get("version")


def test_a_fork_answers_with_its_sources_data_and_then_goes_its_own_way(
    running_platform: Platform, tmp_path: Path
) -> None:
    p, home = running_platform, tmp_path
    app = new_app(p, "fsrc")
    fork = f"{app}-pr"
    result = deploy(p, app, source())
    assert result["state"] == "succeeded", log_of(p, app, result["id"])
    made = p.api("POST", "/spaces", json={"name": f"{app}-data", "size": "64M"})
    assert made.status_code == 201, made.text
    attached = p.api("POST", f"/spaces/{app}-data/attach", json={"app": app, "slot": "data"})
    assert attached.status_code == 201, attached.text
    wait_until(lambda: current_version(p, app) == 2, timeout=120, what="the attach roll")
    assert get(p, app, "/write?one") == "written"
    assert get(p, app) == "one"

    started = time.monotonic()
    output = ok(p, home, "apps:fork", app, fork)
    wait_until(lambda: serves(p, fork, "one"), timeout=FORK_SECONDS, what="the fork to answer")
    took = time.monotonic() - started
    assert took < FORK_SECONDS
    assert f"Forked {app} v2 into {fork}." in output
    assert f"Space {app}-data forked into {fork}-data (slot data)." in output
    assert "v1 is live" in output

    # Writes to one do not show in the other.
    assert get(p, fork, "/write?two") == "written"
    assert get(p, app) == "one" and get(p, fork) == "two"
    assert get(p, app, "/write?three") == "written"
    assert get(p, fork) == "two" and get(p, app) == "three"
    # The fork has its source's assets too (a copy of its release).
    assert json.loads(get(p, fork, "/assets"))["logo"] == "the logo\n"

    # The fork's spaces are its own: the source goes with its spaces, the fork keeps working.
    destroyed = ok(p, home, "apps:destroy", "-a", app, "--confirm", app, "--delete-spaces")
    assert f"Deleted spaces: {app}-data." in destroyed
    spaces = {s["name"] for s in p.api("GET", "/spaces").json()}
    assert f"{app}-data" not in spaces and f"{fork}-data" in spaces
    assert get(p, fork) == "two"
    assert get(p, fork, "/write?four") == "written" and get(p, fork) == "four"

    kept = ok(p, home, "apps:destroy", "-a", fork, "--confirm", fork)
    assert f"Kept spaces: {fork}-data" in kept
    assert f"{fork}-data" in {s["name"] for s in p.api("GET", "/spaces").json()}
    ok(p, home, "spaces:delete", f"{fork}-data", "--confirm", f"{fork}-data")


def test_assets_are_read_only_at_mnt_assets_and_not_in_the_slug(
    running_platform: Platform, tmp_path: Path
) -> None:
    p = running_platform
    app = new_app(p, "assets")
    result = deploy(p, app, source())
    assert result["state"] == "succeeded", log_of(p, app, result["id"])
    assert "Packing assets/" in log_of(p, app, result["id"])

    seen = json.loads(get(p, app, "/assets"))

    assert seen == {"logo": "the logo\n", "in_app": False, "write": "EROFS"}
    # A one-off run of the release sees them too.
    ran = slipway(p, tmp_path, "run", "-a", app, "cat /mnt/assets/img/logo.txt; ls /mnt/app")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == ["the logo", "requirements.txt", "wsgi.py"]
    assert p.api("DELETE", f"/apps/{app}").status_code == 204
    assert not (p.settings.assets_dir / app).exists()
