"""npm at run time on a running platform: `web: npm start`, `release: npm run ...` and
`slipway run npm run ...`, all under the app's Node.js release (not the run image's Debian node).

The app has no dependencies; each answer names the Node.js that serves it, so the test sees the
release really runs under npm. A redeploy must still switch with no dropped request: the old
instance's `npm start` passes supervisord's SIGTERM on to the app and waits for it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.helpers import wait_until
from tests.integration.platform import Platform
from tests.integration.test_e2e_api import (
    RequestLoop,
    answers,
    containers_of,
    deploy,
    log_of,
    new_app,
    tar_files,
)
from tests.integration.test_processes_api import slipway
from tests.integration.test_run_terminal import Screen

pytestmark = pytest.mark.slow

# Closes its listener on SIGTERM and exits 0 once the last connection is done, as a drained
# Express app would. Under `npm start` the stop's SIGTERM comes twice (supervisord signals the
# process group, and npm forwards it), as on Heroku: the handler acts on the first.
SERVER = """
const VERSION = %s;
const server = require('http').createServer((req, res) => {
  res.setHeader('Connection', 'close');
  res.end(VERSION + ' on ' + process.version + ' via ' + process.env.npm_lifecycle_event);
}).listen(process.env.PORT);
let stopping = false;
process.on('SIGTERM', () => {
  if (!stopping) server.close(() => process.exit(0));
  stopping = true;
});
"""
PROCFILE = "web: npm start\nrelease: npm run release-task\n"


def npm_app(version: str) -> bytes:
    package = {
        "name": "npm-at-run-time",
        "version": "1.0.0",
        "private": True,
        "engines": {"node": "22.x"},
        "scripts": {
            "start": "node server.js",
            "release-task": 'echo "release task of $npm_package_name on $(node --version)"',
            "hello": 'echo "hello from $npm_lifecycle_event on $(node --version) as $(id -un)"',
            "fail": "exit 7",
        },
    }
    return tar_files(
        {
            "package.json": json.dumps(package),
            "server.js": SERVER % json.dumps(version),
            "Procfile": PROCFILE,
        }
    )


def test_npm_start_release_and_run_on_the_apps_node(
    running_platform: Platform, tmp_path: Path
) -> None:
    app = new_app(running_platform, "npmrun")
    try:
        result = deploy(running_platform, app, npm_app("v1"))
        log = log_of(running_platform, app, result["id"])
        assert result["state"] == "succeeded", log
        assert "release task of npm-at-run-time on v22." in log, log
        wait_until(answers(running_platform, app, "v1 on v22."), 60, "npm start never answered")
        assert running_platform.http_get_app(app, "/").text.endswith(" via start")

        ran = slipway(
            running_platform, tmp_path, "run", "-a", app, "--no-tty", "npm", "run", "hello"
        )
        assert ran.returncode == 0, ran.stderr
        assert "hello from hello on v22." in ran.stdout and " as mop" in ran.stdout, ran.stdout
        failed = slipway(
            running_platform, tmp_path, "run", "-a", app, "--no-tty", "npm", "run", "fail"
        )
        assert failed.returncode == 7, (failed.stdout, failed.stderr)
        screen = Screen(
            running_platform, tmp_path, "run", "-a", app, "npm", "run", "hello", rows=30, cols=100
        )
        try:
            screen.expect(rb"hello from hello on v22\.\d+\.\d+ as mop")
            assert screen.exit_status() == 0, screen.text()
        finally:
            screen.close()

        # The redeploy drains the old instance: npm forwards SIGTERM, the app exits on its own.
        # The deploy waits for that stop, which takes seconds; a stop that ended in
        # supervisord's kill would add its 10 s wait.
        with RequestLoop(running_platform, app) as loop:
            started = time.monotonic()
            redeployed = deploy(running_platform, app, npm_app("v2"))
            took = time.monotonic() - started
            assert redeployed["state"] == "succeeded", log_of(
                running_platform, app, redeployed["id"]
            )
            assert running_platform.http_get_app(app, "/").text.startswith("v2 on v22.")
            assert len(containers_of(app, "instance")) == 1  # the old one is gone
            time.sleep(1)  # a few more requests after the switch
        assert loop.count > 20 and loop.failures == [], loop.failures[:5]
        assert took < 16, f"the redeploy took {took:.0f} s"
    finally:
        running_platform.api("DELETE", f"/apps/{app}")
