"""End to end: the HTTP API and the router of a running platform, with real builds and containers.

Every test makes apps of its own (random names), so the tests share one platform safely.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import signal
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from slipway.db import make_engine, make_session_factory, session_scope
from slipway.runtime.base import LABEL_APP, LABEL_KIND
from slipway.services.users import create_token, create_user
from tests.helpers import wait_until
from tests.integration.platform import Platform

pytestmark = pytest.mark.slow

FIXTURE_APPS = Path(__file__).resolve().parents[1] / "fixtures" / "apps"
DEPLOY_TIMEOUT = 900
ROLL_TIMEOUT = 300
TERMINAL = {"succeeded", "failed", "cancelled"}

# A WSGI app the Debian gunicorn of run-python serves: its answer shows the code version and the
# config, so a test can see which release is live.
PY_APP = """\
import os

def application(environ, start_response):
    body = "{greeting} from {version}\\n".format(
        greeting=os.environ.get("GREETING", "hello"), version=VERSION
    ).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""

# Used when tests/fixtures/apps has no app of that stack.
INLINE_APPS: dict[str, dict[str, str]] = {
    "node": {
        "package.json": json.dumps(
            {"name": "e2e-node", "version": "1.0.0", "scripts": {"start": "node server.js"}}
        ),
        "server.js": (
            "require('http').createServer((req, res) => res.end('node says hi ' + req.url))"
            ".listen(process.env.PORT);\n"
        ),
    },
    "python": {"requirements.txt": "", "wsgi.py": "VERSION = 'v1'\n" + PY_APP},
    "static": {"index.html": "<h1>static says hi</h1>\n"},
}


# ----------------------------------------------------------------------------- helpers


def tar_files(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def tar_dir(path: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for entry in sorted(path.iterdir()):
            tar.add(entry, arcname=entry.name)
    return buffer.getvalue()


def source_of(stack: str) -> bytes:
    directory = FIXTURE_APPS / stack
    return tar_dir(directory) if directory.is_dir() else tar_files(INLINE_APPS[stack])


def python_app(version: str) -> bytes:
    return tar_files({"requirements.txt": "", "wsgi.py": f"VERSION = {version!r}\n" + PY_APP})


def new_app(platform: Platform, prefix: str = "e2e") -> str:
    name = f"{prefix}-{secrets.token_hex(3)}"
    response = platform.api("POST", "/apps", json={"name": name})
    assert response.status_code == 201, response.text
    return name


def start_deploy(platform: Platform, app: str, body: bytes) -> requests.Response:
    headers = {"Content-Type": "application/gzip"}
    return platform.api("POST", f"/apps/{app}/deploys", data=body, headers=headers)


def wait_deploy(platform: Platform, app: str, deploy_id: int, timeout: float = DEPLOY_TIMEOUT):
    """Poll the deploy until it is terminal (bounded); its JSON."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        deploy = platform.api("GET", f"/apps/{app}/deploys/{deploy_id}").json()
        if deploy["state"] in TERMINAL:
            return deploy
        time.sleep(1)
    raise AssertionError(f"deploy {deploy_id} of {app} did not finish in {timeout} s")


def deploy(platform: Platform, app: str, body: bytes) -> dict[str, Any]:
    accepted = start_deploy(platform, app, body)
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["state"] == "queued"
    return wait_deploy(platform, app, accepted.json()["id"])


def log_of(platform: Platform, app: str, deploy_id: int) -> str:
    return platform.api("GET", f"/apps/{app}/deploys/{deploy_id}/log").text


def answers(platform: Platform, app: str, text: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            response = platform.http_get_app(app, "/", timeout=5)
        except requests.RequestException:
            return False
        return response.status_code == 200 and text in response.text

    return check


class RequestLoop:
    """GETs through the router from a thread, bounded in count and time; records failures."""

    def __init__(self, platform: Platform, app: str, max_requests: int = 20000) -> None:
        self.platform, self.app, self.max_requests = platform, app, max_requests
        self.failures: list[str] = []
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RequestLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        deadline = time.monotonic() + DEPLOY_TIMEOUT
        while not self._stop.is_set() and self.count < self.max_requests:
            if time.monotonic() > deadline:
                return
            self.count += 1
            # A new connection each time, as most clients do between deploys.
            with requests.Session() as http:
                http.trust_env = False
                try:
                    response = http.get(
                        self.platform.router_url + "/",
                        headers={"Host": f"{self.app}.localhost"},
                        timeout=10,
                    )
                    if response.status_code != 200:
                        self.failures.append(f"{response.status_code}: {response.text[:80]}")
                except requests.RequestException as error:
                    self.failures.append(repr(error))
            time.sleep(0.02)


def containers_of(app: str, kind: str | None = None) -> list[Any]:
    client = docker.from_env()
    try:
        labels = [f"{LABEL_APP}={app}"] + ([f"{LABEL_KIND}={kind}"] if kind else [])
        return client.containers.list(all=True, filters={"label": labels})
    finally:
        client.close()


@pytest.fixture
def served_app(running_platform: Platform) -> Iterator[str]:
    """A python app with release v1 live."""
    app = new_app(running_platform)
    assert deploy(running_platform, app, python_app("v1"))["state"] == "succeeded"
    wait_until(answers(running_platform, app, "hello from v1"), 30, "v1 never answered")
    yield app
    running_platform.api("DELETE", f"/apps/{app}")


# ----------------------------------------------------------------------------- deploys


@pytest.mark.parametrize("stack", ["node", "python", "static"])
def test_each_stack_deploys_and_answers_by_host_and_by_path(
    running_platform: Platform, stack: str
) -> None:
    app = new_app(running_platform, stack)

    done = deploy(running_platform, app, source_of(stack))

    assert done["state"] == "succeeded", log_of(running_platform, app, done["id"])
    by_host = running_platform.http_get_app(app, "/")
    by_path = running_platform.http_get_app(app, "/", by="path")
    assert by_host.status_code == 200, by_host.text
    assert by_path.status_code == 200, by_path.text
    # The same instance answers both ways (its first line; the node app adds its uptime after).
    assert by_path.text.splitlines()[0] == by_host.text.splitlines()[0]
    assert "hello from" in by_host.text
    shown = running_platform.api("GET", f"/apps/{app}").json()
    assert shown["release"]["version"] == 1
    assert shown["url"] == f"http://{app}.localhost:{running_platform.router_port}"
    assert [i["state"] for i in shown["instances"]] == ["live"]


def test_redeploy_config_and_rollback_never_drop_a_request(
    running_platform: Platform, served_app: str
) -> None:
    app = served_app
    with RequestLoop(running_platform, app) as loop:
        assert deploy(running_platform, app, python_app("v2"))["state"] == "succeeded"
        wait_until(answers(running_platform, app, "hello from v2"), 30, "v2 never answered")

        changed = running_platform.api("PATCH", f"/apps/{app}/config", json={"GREETING": "howdy"})
        assert changed.status_code == 200, changed.text
        wait_until(answers(running_platform, app, "howdy from v2"), ROLL_TIMEOUT, "no new config")

        rolled = running_platform.api("POST", f"/apps/{app}/rollback", json={"version": 1})
        assert rolled.status_code in (200, 201), rolled.text
        wait_until(answers(running_platform, app, "hello from v1"), ROLL_TIMEOUT, "no rollback")
        time.sleep(2)  # a few more requests after the old instances are gone

    assert loop.count > 50
    assert loop.failures == []
    versions = [r["version"] for r in running_platform.api("GET", f"/apps/{app}/releases").json()]
    assert versions == [4, 3, 2, 1]


def test_a_failing_build_leaves_the_old_release_serving(
    running_platform: Platform, served_app: str
) -> None:
    failed = deploy(running_platform, served_app, tar_files({"package.json": "{ not json"}))

    assert failed["state"] == "failed"
    assert failed["error"]
    assert answers(running_platform, served_app, "hello from v1")()
    assert running_platform.api("GET", f"/apps/{served_app}").json()["release"]["version"] == 1


def test_an_app_that_never_listens_leaves_the_old_release_serving(
    running_platform: Platform, served_app: str
) -> None:
    silent = tar_files({"requirements.txt": "", "Procfile": "web: sleep 100000\n"})

    failed = deploy(running_platform, served_app, silent)

    assert failed["state"] == "failed"
    assert failed["error"]
    assert answers(running_platform, served_app, "hello from v1")()
    instances = running_platform.api("GET", f"/apps/{served_app}").json()["instances"]
    assert [i["state"] for i in instances] == ["live"]


def test_an_instance_restarted_by_docker_is_routed_again(
    served_app: str, running_platform: Platform
) -> None:
    """dockerd or the host restarting publishes the container on a new port: it is followed."""
    [container] = containers_of(served_app, "instance")
    before = running_platform.api("GET", f"/apps/{served_app}").json()["instances"][0]["port"]
    container.restart(timeout=2)

    def recorded() -> bool:
        # The reconciler (every 30 s here) records the new port and rewrites the router. The
        # router answering is not enough: the old port may meanwhile serve another container.
        container.reload()
        published = container.attrs["NetworkSettings"]["Ports"]["5000/tcp"][0]["HostPort"]
        [shown] = running_platform.api("GET", f"/apps/{served_app}").json()["instances"]
        return shown["state"] == "live" and shown["port"] == int(published)

    wait_until(recorded, 120, "the new port is not recorded")
    wait_until(answers(running_platform, served_app, "hello from v1"), 30, "not routed again")
    assert before is not None


def test_a_worker_killed_mid_build_leaves_nothing_stuck(running_platform: Platform) -> None:
    app = new_app(running_platform, "kill")
    slow = tar_files(
        {
            "package.json": json.dumps({"name": "slow", "scripts": {"build": "sleep 120"}}),
            "server.js": INLINE_APPS["node"]["server.js"],
        }
    )
    accepted = start_deploy(running_platform, app, slow)
    assert accepted.status_code == 202, accepted.text
    deploy_id = accepted.json()["id"]
    wait_until(lambda: containers_of(app, "build") != [], DEPLOY_TIMEOUT, "the build never started")

    _kill_worker(running_platform)

    done = wait_deploy(running_platform, app, deploy_id, timeout=600)
    assert done["state"] in TERMINAL
    if done["state"] == "failed":
        assert done["error"]
    wait_until(lambda: containers_of(app, "build") == [], 300, "build containers were left")
    again = deploy(running_platform, app, python_app("after-kill"))
    assert again["state"] == "succeeded", log_of(running_platform, app, again["id"])
    assert answers(running_platform, app, "hello from after-kill")()


def _kill_worker(platform: Platform) -> None:
    """SIGKILL the Celery worker's whole process group; supervisord starts a new one."""
    status = platform.server("status").stdout.splitlines()
    row = next(line.split() for line in status if line.startswith("worker "))
    os.killpg(os.getpgid(int(row[3])), signal.SIGKILL)


# ----------------------------------------------------------------------------- refusals


def _other_user_token(platform: Platform) -> str:
    engine = make_engine(platform.settings)
    try:
        with session_scope(make_session_factory(engine)) as session:
            user = create_user(session, f"user-{secrets.token_hex(3)}")
            return create_token(session, user, name="e2e")
    finally:
        engine.dispose()


def test_auth_is_required_and_apps_are_private(running_platform: Platform) -> None:
    app = new_app(running_platform, "auth")
    other = _other_user_token(running_platform)

    bare = running_platform.http.get(running_platform.api_url + "/api/v1/apps", timeout=10)
    assert bare.status_code == 401
    assert "error" in bare.json()
    assert running_platform.api("GET", "/apps", token="slw_not-a-token").status_code == 401
    assert running_platform.api("GET", f"/apps/{app}", token=other).status_code == 404
    assert running_platform.api("DELETE", f"/apps/{app}", token=other).status_code == 404
    assert app not in [a["name"] for a in running_platform.api("GET", "/apps", token=other).json()]
    assert running_platform.api("GET", f"/apps/{app}").status_code == 200


@pytest.mark.parametrize("name", ["Bad_Name", "-dash", "dot.ted", "a" * 64, ""])
def test_invalid_app_names_are_refused(running_platform: Platform, name: str) -> None:
    response = running_platform.api("POST", "/apps", json={"name": name})

    assert 400 <= response.status_code < 500
    assert response.json()["error"]


def _tar_with(entry: tarfile.TarInfo, data: bytes = b"x") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.addfile(tarfile.TarInfo("index.html"), io.BytesIO(b""))
        entry.size = len(data) if entry.isfile() else 0
        tar.addfile(entry, io.BytesIO(data) if entry.isfile() else None)
    return buffer.getvalue()


def _symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"this is not a tarball", "archive"),
        (_tar_with(tarfile.TarInfo("../escape.txt")), "leaves its directory"),
        (_tar_with(tarfile.TarInfo("/abs.txt")), "absolute path"),
        (_tar_with(_symlink("link", "/etc/passwd")), "outside"),
        (_tar_with(_symlink("link", "../../x")), "outside"),
    ],
)
def test_bad_archives_are_refused_with_a_clear_error(
    running_platform: Platform, body: bytes, message: str
) -> None:
    app = new_app(running_platform, "bad")

    response = start_deploy(running_platform, app, body)

    assert response.status_code in (400, 422), response.text
    assert message in response.json()["error"]
    assert not (running_platform.data_dir.parent / "escape.txt").exists()
    assert running_platform.api("GET", f"/apps/{app}/releases").json() == []


def test_an_oversized_upload_is_refused(running_platform: Platform) -> None:
    app = new_app(running_platform, "big")
    limit = running_platform.settings.max_upload_size

    try:
        response = start_deploy(running_platform, app, b"\0" * (limit + 1024))
    except requests.ConnectionError:
        pytest.fail("the API closed the connection instead of answering 413")

    assert response.status_code == 413
    assert "limit" in response.json()["error"]


# ----------------------------------------------------------------------------- delete


def test_delete_removes_instances_volumes_and_the_route(running_platform: Platform) -> None:
    app = new_app(running_platform, "del")
    assert deploy(running_platform, app, python_app("v1"))["state"] == "succeeded"
    assert containers_of(app, "instance")

    response = running_platform.api("DELETE", f"/apps/{app}")

    assert response.status_code == 204
    assert containers_of(app) == []
    assert running_platform.api("GET", f"/apps/{app}").status_code == 404
    gone = running_platform.http_get_app(app, "/")
    assert gone.status_code == 404
    assert f"No app named {app}" in gone.text
    volumes = running_platform.data_dir / "volumes"
    assert not [p for p in volumes.glob("*") if app in p.name]
