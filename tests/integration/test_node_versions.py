"""Node.js versions on a running platform: engines.node picks the release, from the npm registry.

Each app answers with ``process.version``, so the test sees the Node.js that really runs it:
in the build, the release phase, the instances, and after a config change (a new release).
"""

from __future__ import annotations

import json
import re
import time

import pytest

from slipway.services.runtimes import semver
from tests.helpers import wait_until
from tests.integration.platform import Platform
from tests.integration.test_e2e_api import answers, deploy, log_of, new_app, tar_files

pytestmark = pytest.mark.slow

SERVER = (
    "require('http').createServer((req, res) => res.end('node ' + process.version))"
    ".listen(process.env.PORT);\n"
)
# The release phase prints its Node.js version into the deploy log.
PROCFILE = (
    "web: node server.js\nrelease: node -e \"console.log('release on ' + process.version)\"\n"
)


def node_app(engines: str | None) -> bytes:
    package: dict[str, object] = {"name": "versions", "version": "1.0.0", "private": True}
    if engines is not None:
        package["engines"] = {"node": engines}
    return tar_files(
        {"package.json": json.dumps(package), "server.js": SERVER, "Procfile": PROCFILE}
    )


def version_in_log(log: str, reason: str) -> str:
    """The version the build log says it chose for ``reason``."""
    match = re.search(rf"-----> Node\.js (\d+\.\d+\.\d+) \({re.escape(reason)}\)", log)
    assert match, log
    return match[1]


@pytest.mark.parametrize("major", ["20", "22"])
def test_engines_node_picks_the_major_the_app_runs_on(
    running_platform: Platform, major: str
) -> None:
    app = new_app(running_platform, f"node{major}")
    try:
        result = deploy(running_platform, app, node_app(major))
        log = log_of(running_platform, app, result["id"])
        assert result["state"] == "succeeded", log
        version = version_in_log(log, f"engines.node {major} in package.json")
        assert semver.satisfies(semver.parse_version(version) or (0, 0, 0), major)
        # The build ran on it (build-node names the node it runs), and so did the release phase.
        assert f"Node.js {version}, npm " in log
        assert f"release on v{version}" in log
        wait_until(answers(running_platform, app, f"node v{version}"), 60, "never answered")

        # A config change is a new release: it keeps its Node.js, fetched no more.
        changed = running_platform.api("PATCH", f"/apps/{app}/config", json={"GREETING": "x"})
        assert changed.status_code == 200, changed.text
        wait_until(lambda: _served_by_release(running_platform, app, 2), 120, "v2 never live")
        assert running_platform.http_get_app(app, "/").text == f"node v{version}"
        listed = running_platform.api("GET", f"/apps/{app}/releases").json()
        assert [r["node_version"] for r in listed] == [version, version]
        home = running_platform.data_dir / "runtimes" / "node" / version
        assert (home / "bin" / "node").is_file()
    finally:
        running_platform.api("DELETE", f"/apps/{app}")


def test_without_engines_node_the_newest_lts_line(running_platform: Platform) -> None:
    app = new_app(running_platform, "nodelts")
    try:
        result = deploy(running_platform, app, node_app(None))
        log = log_of(running_platform, app, result["id"])
        assert result["state"] == "succeeded", log
        match = re.search(
            r"-----> Node\.js (\d+)\.\d+\.\d+ \(no engines\.node: the newest LTS line, (\d+)\)", log
        )
        assert match, log
        assert match[1] == match[2] and int(match[1]) % 2 == 0 and int(match[1]) >= 22
        wait_until(answers(running_platform, app, f"node v{match[1]}."), 60, "never answered")
    finally:
        running_platform.api("DELETE", f"/apps/{app}")


def test_a_range_no_release_satisfies_fails_at_once_listing_what_there_is(
    running_platform: Platform,
) -> None:
    app = new_app(running_platform, "nodenone")
    try:
        started = time.monotonic()
        result = deploy(running_platform, app, node_app(">=99"))
        assert result["state"] == "failed"
        assert time.monotonic() - started < 60
        error = result["error"]
        assert error.startswith(
            "No Node.js release satisfies engines.node '>=99' in package.json; "
            "the newest of each line: "
        ), error
        assert re.search(r"\b20\.\d+\.\d+, 21\.\d+\.\d+, 22\.\d+\.\d+", error), error
        log = log_of(running_platform, app, result["id"])
        assert "Building with" not in log  # no build container was started
    finally:
        running_platform.api("DELETE", f"/apps/{app}")


def _served_by_release(platform: Platform, app: str, version: int) -> bool:
    reply = platform.api("GET", f"/apps/{app}").json()
    instances = reply["instances"]
    return (
        reply["release"]["version"] == version
        and bool(instances)
        and all(i["release"] == version and i["state"] == "live" for i in instances)
    )
