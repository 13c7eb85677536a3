"""A SQLite app whose data lives in a space (app.json "spaces") on a running platform: its
counter survives redeploys (rolling, with two instances sharing the space and no failed request,
and stop-first), a config change, a rollback, scaling, ``ps:restart`` and a dockerd restart; the
release phase and ``slipway run`` see the same data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.helpers import wait_until
from tests.integration.platform import Platform
from tests.integration.test_e2e_api import deploy, new_app, tar_files
from tests.integration.test_processes_api import slipway
from tests.integration.test_run_terminal import Screen

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ROLL_TIMEOUT = 120
LOOP_SECONDS = 60  # the request loop's bound in time...
LOOP_REQUESTS = 3000  # ...and in count
DOCKERD_TIMEOUT = 90

# The app of the README's example: Python's standard library only. Every GET /
# adds one to a counter in SQLite, in one transaction; /peek reads it; /notes lists what the
# release phase and one-off runs wrote.
SERVER = """\
import os, sqlite3
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DB = "/spaces/data/tree/counter.db"
VERSION = "%(version)s"


def connect():
    db = sqlite3.connect(DB, timeout=30, isolation_level=None)
    db.execute("CREATE TABLE IF NOT EXISTS counter (n INTEGER NOT NULL)")
    db.execute("CREATE TABLE IF NOT EXISTS notes (text TEXT NOT NULL)")
    return db


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        db = connect()
        try:
            if self.path == "/notes":
                text = ",".join(row[0] for row in db.execute("SELECT text FROM notes"))
            else:
                if self.path == "/":
                    db.execute("BEGIN IMMEDIATE")
                    if db.execute("UPDATE counter SET n = n + 1").rowcount == 0:
                        db.execute("INSERT INTO counter VALUES (1)")
                    db.execute("COMMIT")
                n = db.execute("SELECT coalesce(max(n), 0) FROM counter").fetchone()[0]
                greeting = os.environ.get("GREETING", "hello")
                text = "count=%%d version=%%s greeting=%%s" %% (n, VERSION, greeting)
        finally:
            db.close()
        body = (text + "\\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
"""
RELEASE = """\
import sqlite3
db = sqlite3.connect("/spaces/data/tree/counter.db", timeout=30)
db.execute("CREATE TABLE IF NOT EXISTS counter (n INTEGER NOT NULL)")
db.execute("CREATE TABLE IF NOT EXISTS notes (text TEXT NOT NULL)")
db.execute("INSERT INTO notes VALUES ('release %(version)s')")
db.commit()
"""
APP_JSON = {"spaces": {"data": {"size": "64M"}}}
TTY_COUNT = (
    b"echo \"tty-$(( $(python3 -c 'import sqlite3; print(sqlite3.connect("
    b'"/spaces/data/tree/counter.db").execute("SELECT n FROM counter").fetchone()[0])\') '
    b'+ 1000 ))"\r'
)


def source(version: str) -> bytes:
    return tar_files(
        {
            "requirements.txt": "",
            "server.py": SERVER % {"version": version},
            "release.py": RELEASE % {"version": version},
            "Procfile": "web: exec python3 server.py\nrelease: python3 release.py\n",
            "app.json": json.dumps(APP_JSON),
        }
    )


def peek(platform: Platform, app: str) -> str | None:
    """``count=N version=V greeting=G`` without counting, or None when it does not answer."""
    try:
        response = platform.http_get_app(app, "/peek", timeout=5)
    except requests.RequestException:
        return None
    return response.text if response.status_code == 200 else None


def count_of(text: str | None) -> int:
    assert text is not None and text.startswith("count="), text
    return int(text.split()[0].removeprefix("count="))


def wait_for(platform: Platform, app: str, words: str) -> int:
    """Wait until /peek says ``words``; the count then."""
    wait_until(lambda: words in (peek(platform, app) or ""), ROLL_TIMEOUT, f"{app}: {words}")
    return count_of(peek(platform, app))


def hit(platform: Platform, app: str) -> int:
    response = platform.http_get_app(app, "/", timeout=10)
    assert response.status_code == 200, response.text
    return count_of(response.text)


class Loop:
    """GET / (each one counts) from a thread, bounded in time and count; keeps every answer."""

    def __init__(self, platform: Platform, app: str) -> None:
        self.platform, self.app = platform, app
        self.answers: list[str] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Loop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        deadline = time.monotonic() + LOOP_SECONDS
        while not self._stop.is_set() and time.monotonic() < deadline:
            if len(self.answers) + len(self.failures) >= LOOP_REQUESTS:
                return
            try:
                response = self.platform.http_get_app(self.app, "/", timeout=10)
            except requests.RequestException as error:
                self.failures.append(repr(error))
                continue
            if response.status_code == 200:
                self.answers.append(response.text)
            else:
                self.failures.append(f"{response.status_code}: {response.text[:80]}")
            time.sleep(0.01)


def ok(platform: Platform, home: Path, *args: str) -> str:
    result = slipway(platform, home, *args)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def restart_dockerd() -> None:
    """Stop dockerd (SIGTERM, as a host shutdown does) and start it again, bounded."""
    pid = int(Path("/var/run/docker.pid").read_text().strip())
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), DOCKERD_TIMEOUT, "dockerd stopped")
    started = subprocess.run(
        [str(REPO / "scripts" / "start-docker.sh")],
        capture_output=True,
        text=True,
        timeout=DOCKERD_TIMEOUT,
        check=False,
    )
    assert started.returncode == 0, started.stderr


@pytest.fixture(scope="module")
def app(running_platform: Platform) -> Iterator[str]:
    name = new_app(running_platform, "sqlite")
    done = deploy(running_platform, name, source("v1"))
    assert done["state"] == "succeeded", done.get("error")
    yield name
    running_platform.api("DELETE", f"/apps/{name}")


# ----------------------------------------------------------------------------- tests


def test_the_counter_survives_every_life_cycle_step(
    running_platform: Platform, app: str, tmp_path: Path
) -> None:
    p = running_platform
    spaces = {s["name"]: s for s in json.loads(ok(p, tmp_path, "spaces:list", "--json"))}
    assert spaces[f"{app}-data"]["attachments"] == [
        {"app": app, "slot": "data", "process_types": []}
    ]
    assert [hit(p, app) for _ in range(3)] == [1, 2, 3]

    # The release phase and a one-off run see the same data (and the run's write is seen).
    script = (
        "import sqlite3; db = sqlite3.connect('/spaces/data/tree/counter.db'); "
        "print('seen', db.execute('SELECT n FROM counter').fetchone()[0], "
        "[r[0] for r in db.execute('SELECT text FROM notes')]); "
        "db.execute(\"INSERT INTO notes VALUES ('run')\"); db.commit()"
    )
    assert "seen 3 ['release v1']" in ok(p, tmp_path, "run", "-a", app, "python3", "-c", script)
    assert p.http_get_app(app, "/notes").text.strip() == "release v1,run"
    tty = Screen(p, tmp_path, "run", "-a", app, "bash", rows=30, cols=100)
    try:  # with a terminal too (the marker is computed, so the typed line never matches it)
        tty.type(TTY_COUNT)
        tty.expect(rb"tty-1003")
        tty.type(b"exit\r")
        assert tty.exit_status() == 0, tty.text()
    finally:
        tty.close()

    # A rolling redeploy: old and new share the space for a moment; no request fails and
    # no update is lost (every answer counts one more than the one before).
    before = count_of(peek(p, app))
    with Loop(p, app) as loop:
        done = deploy(p, app, source("v2"))
        assert done["state"] == "succeeded", done.get("error")
        time.sleep(1)
    assert loop.failures == []
    counts = [count_of(a) for a in loop.answers]
    assert counts == list(range(before + 1, before + 1 + len(counts)))
    versions = [a.split()[1] for a in loop.answers]
    assert "version=v1" in versions and versions[-1] == "version=v2"
    assert p.http_get_app(app, "/notes").text.strip() == "release v1,run,release v2"

    # A config change, a rollback, scaling up and down, a restart: the count stays.
    n = count_of(peek(p, app))
    changed = p.api("PATCH", f"/apps/{app}/config", json={"GREETING": "howdy"})
    assert changed.status_code == 200, changed.text
    assert wait_for(p, app, "version=v2 greeting=howdy") == n
    rolled = p.api("POST", f"/apps/{app}/rollback", json={"version": 1})
    assert rolled.status_code in (200, 201), rolled.text
    assert wait_for(p, app, "version=v1 greeting=hello") == n
    scaled = p.api("POST", f"/apps/{app}/scale", json={"web": 2})
    assert scaled.status_code == 200, scaled.text
    try:
        wait_until(lambda: len(web_ports(p, app)) == 2, ROLL_TIMEOUT, "two web instances")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the app's events: {events(p, app)}") from None
    for port in web_ports(p, app):  # each instance counts in the same database
        direct = requests.get(f"http://127.0.0.1:{port}/", timeout=10)
        n += 1
        assert count_of(direct.text) == n
    assert p.api("POST", f"/apps/{app}/scale", json={"web": 1}).status_code == 200
    wait_until(lambda: len(web_ports(p, app)) == 1, ROLL_TIMEOUT, "one web instance")
    assert hit(p, app) == n + 1
    restarted = p.api("POST", f"/apps/{app}/processes/web/restart", json={})
    assert restarted.status_code == 200, restarted.text
    assert wait_for(p, app, f"count={n + 1} ") == n + 1


def events(platform: Platform, app: str) -> list[str]:
    """The app's latest events, to explain a roll that did not happen."""
    found = platform.api("GET", f"/apps/{app}/events", params={"limit": 5}).json()
    return [event["message"] for event in found]


def web_ports(platform: Platform, app: str) -> list[int]:
    shown = platform.api("GET", f"/apps/{app}").json()
    return [
        i["port"]
        for i in shown["instances"]
        if i["process_type"] == "web" and i["state"] == "live" and i["port"]
    ]


def test_stop_first_deploys_keep_the_data_with_a_short_gap(
    running_platform: Platform, app: str, tmp_path: Path
) -> None:
    p = running_platform
    ok(p, tmp_path, "apps:update", "-a", app, "--deploy-strategy", "stop-first")
    assert "stop-first" in ok(p, tmp_path, "apps:info", "-a", app)
    n = count_of(peek(p, app))
    with Loop(p, app) as loop:
        done = deploy(p, app, source("v3"))
        assert done["state"] == "succeeded", done.get("error")
        wait_for(p, app, "version=v3")
        time.sleep(1)
    log = p.api("GET", f"/apps/{app}/deploys/{done['id']}/log").text
    assert "deploy strategy stop-first" in log
    print(next(line for line in log.splitlines() if "without a running web instance" in line))
    counts = [count_of(a) for a in loop.answers]
    assert counts == list(range(n + 1, n + 1 + len(counts)))  # one writer at a time, none lost
    # In the gap the wake service holds requests for the new release; anything it cannot hold
    # is a 503, never a dead port's error.
    print(f"{len(loop.failures)} answers 503, {len(loop.answers)} answered 200")
    assert all(f.startswith("503: ") for f in loop.failures), loop.failures
    versions = [a.split()[1] for a in loop.answers]
    assert versions.index("version=v3") > versions.index("version=v1")
    assert "version=v1" not in versions[versions.index("version=v3") :]
    ok(p, tmp_path, "apps:update", "-a", app, "--deploy-strategy", "rolling")


def test_the_data_survives_a_dockerd_restart(running_platform: Platform, app: str) -> None:
    p = running_platform
    n = hit(p, app)
    restart_dockerd()
    # Docker starts the container again on a new port; the reconciler follows it.
    assert wait_for(p, app, f"count={n} ") == n
    assert hit(p, app) == n + 1
