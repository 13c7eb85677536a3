"""Sleep and wake on a real platform: idle apps sleep, the first request wakes them.

One platform for the module (the sleeper checks every second, a start times out after 15 s) and
four small stdlib Python apps, deployed at once. Every request goes through the router (nginx),
which hands the requests of a sleeping app to the wake service; containers are counted with
their Docker labels, events through the API, and webhooks with a real receiver on 127.0.0.2.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from tests.helpers import free_port, wait_until
from tests.integration.platform import (
    SLIPWAY,
    WEBHOOK_RECEIVER_HOST,
    Platform,
    own_platform,
)
from tests.integration.test_e2e_api import (
    containers_of,
    log_of,
    new_app,
    start_deploy,
    tar_files,
    wait_deploy,
)
from tests.integration.test_webhooks_delivery import Receiver

pytestmark = pytest.mark.slow

SLEEP_AFTER = "10s"
START_TIMEOUT = 15  # seconds: a wake that never listens fails after this
SLEEP_TIMEOUT = 60  # idle (10 s) + traffic flush (2 s) + sleeper passes, with room to spare
WAKE_TIMEOUT = 60  # a request that wakes an app (client side)
ROLL_TIMEOUT = 180
STAMPEDE = 25
BODY_SIZE = 300 * 1024
# Far enough ahead that the roll of the config change that sets it is long done by then.
NEVER_LISTEN_DELAY = 45

# A stdlib app: GET answers with its greeting, version and a token drawn at its start (each
# start, so each container, has its own); POST answers
# the sha256 and length of the body it read (Content-Length or chunked). Past the unix time in
# NEVER_LISTEN_AFTER a fresh start never opens its port.
APP = """\
import hashlib
import os
import secrets
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

if time.time() > float(os.environ.get("NEVER_LISTEN_AFTER", "inf")):
    print("past NEVER_LISTEN_AFTER: this start never listens", flush=True)
    while True:
        time.sleep(3600)

STARTED = secrets.token_hex(6)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, text):
        body = (text + "\\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        greeting = os.environ.get("GREETING", "hello")
        self.answer(f"{greeting} from {VERSION} on {STARTED}")

    def do_POST(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\\r\\n", b"\\n", b""):
                        pass
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.answer(f"{hashlib.sha256(body).hexdigest()} {len(body)}")

    def log_message(self, format, *args):
        pass


ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
"""


def app_source(version: str) -> bytes:
    code = f"VERSION = {version!r}\n" + APP
    return tar_files({"requirements.txt": "", "Procfile": "web: python3 app.py\n", "app.py": code})


# ----------------------------------------------------------------------------- fixtures


@dataclass
class Apps:
    """The module's apps: each test uses its own, so their sleeps do not meet."""

    idle: str  # sleeps after 10 s without a request
    busy: str  # never sleeps by itself: body, stampede, vanished container
    failing: str  # its fresh starts never listen once NEVER_LISTEN_AFTER has passed
    rolled: str  # deploy, config change, rollback and scale while asleep
    never_listen_after: float


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    env = {
        "SLIPWAY_SLEEP_CHECK_INTERVAL": "1",
        "SLIPWAY_START_TIMEOUT": str(START_TIMEOUT),
        "SLIPWAY_WAKE_BACKOFF": "5",
    }
    with own_platform(env) as p:
        yield p


@pytest.fixture(scope="module")
def apps(platform: Platform) -> Iterator[Apps]:
    names = [new_app(platform, prefix) for prefix in ("idle", "busy", "fail", "roll")]
    try:
        accepted = [start_deploy(platform, name, app_source("v1")) for name in names]
        for reply in accepted:
            assert reply.status_code == 202, reply.text
        for name, reply in zip(names, accepted, strict=True):
            done = wait_deploy(platform, name, reply.json()["id"])
            assert done["state"] == "succeeded", log_of(platform, name, done["id"])
        idle, busy, failing, rolled = names
        for name in (busy, failing, rolled):
            set_sleep_after(platform, name, "never")
        set_sleep_after(platform, idle, SLEEP_AFTER)
        never_listen_after = time.time() + NEVER_LISTEN_DELAY
        changed = platform.api(
            "PATCH", f"/apps/{failing}/config", json={"NEVER_LISTEN_AFTER": str(never_listen_after)}
        )
        assert changed.status_code == 200, changed.text
        yield Apps(idle, busy, failing, rolled, never_listen_after)
    finally:
        for name in names:
            platform.api("DELETE", f"/apps/{name}", timeout=120)


# ----------------------------------------------------------------------------- helpers


def set_sleep_after(platform: Platform, app: str, value: str) -> None:
    reply = platform.api("PATCH", f"/apps/{app}", json={"sleep_after": value})
    assert reply.status_code == 200, reply.text


def info(platform: Platform, app: str) -> dict[str, Any]:
    reply = platform.api("GET", f"/apps/{app}")
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def sleeping(platform: Platform, app: str) -> bool:
    return bool(info(platform, app)["sleeping"])


def put_to_sleep(platform: Platform, app: str) -> None:
    """``ps:sleep`` through the API; asleep means no running container left.

    A roll the worker still runs (a scale's) holds the app: 409 until it is done.
    """
    deadline = time.monotonic() + ROLL_TIMEOUT
    reply = platform.api("POST", f"/apps/{app}/sleep")
    while reply.status_code == 409 and time.monotonic() < deadline:
        time.sleep(0.5)
        reply = platform.api("POST", f"/apps/{app}/sleep")
    assert reply.status_code == 200, reply.text
    wait_until(lambda: sleeping(platform, app), 30, f"{app} is not shown sleeping")
    wait_until(lambda: not running(app), 30, f"{app}'s containers are still running")
    wait_until(lambda: sleeping(platform, app), 30, f"{app} is not shown sleeping")


def running(app: str) -> list[Any]:
    """The app's instance containers that run now."""
    return [c for c in containers_of(app, "instance") if c.status == "running"]


def all_container_ids(app: str) -> set[str]:
    return {c.id for c in containers_of(app, "instance")}


def get(platform: Platform, app: str, timeout: float = WAKE_TIMEOUT) -> requests.Response:
    """GET / through the router on a new connection (a held request may take a start)."""
    with requests.Session() as http:
        http.trust_env = False
        return http.get(
            platform.router_url + "/",
            headers={"Host": f"{app}.{platform.settings.domain}"},
            timeout=timeout,
        )


def events(platform: Platform, app: str, type: str) -> list[dict[str, Any]]:
    reply = platform.api("GET", f"/apps/{app}/events", params={"type": type})
    assert reply.status_code == 200, reply.text
    return list(reply.json())


def cli(platform: Platform, *args: str) -> str:
    """``slipway <args>`` as a user runs it, logged in by the environment."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(platform.data_dir),
        "SLIPWAY_URL": platform.api_url,
        "SLIPWAY_TOKEN": platform.admin_token,
    }
    done = subprocess.run(
        [SLIPWAY, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"slipway {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


# ----------------------------------------------------------------------------- tests


def test_an_idle_app_sleeps_and_its_next_request_wakes_it(platform: Platform, apps: Apps) -> None:
    app = apps.idle
    assert info(platform, app)["sleep_after"] in ("10s", 10)

    wait_until(lambda: sleeping(platform, app), SLEEP_TIMEOUT, f"{app} never fell asleep")

    wait_until(lambda: not running(app), 30, "the sleeping app's container still runs")
    # The switch to sleeping is committed before the instances retire, the event after.
    wait_until(lambda: bool(events(platform, app, "app_slept")), 30, "no app_slept event")
    [slept] = events(platform, app, "app_slept")
    assert "idle" in slept["message"]
    assert "sleeping" in cli(platform, "ps", "--app", app)
    assert "sleeping" in cli(platform, "apps:info", "--app", app)

    started = time.monotonic()
    woken = get(platform, app)
    took = time.monotonic() - started

    assert woken.status_code == 200, woken.text
    assert woken.text.startswith("hello from v1 on "), woken.text
    assert took < START_TIMEOUT
    assert not sleeping(platform, app)
    assert len(running(app)) == 1
    assert len(events(platform, app, "app_woke")) == 1

    # Requests keep it awake: one a second for longer than its sleep_after.
    deadline = time.monotonic() + 14
    while time.monotonic() < deadline:
        assert get(platform, app, timeout=10).status_code == 200
        time.sleep(1)
    assert not sleeping(platform, app)
    assert len(events(platform, app, "app_slept")) == 1


def test_a_post_body_reaches_a_sleeping_app_intact(platform: Platform, apps: Apps) -> None:
    app = apps.busy
    body = secrets.token_bytes(BODY_SIZE)
    expected = f"{hashlib.sha256(body).hexdigest()} {len(body)}"
    url = platform.router_url + "/upload"
    headers = {"Host": f"{app}.{platform.settings.domain}"}

    put_to_sleep(platform, app)
    with requests.Session() as http:
        http.trust_env = False
        posted = http.post(url, data=body, headers=headers, timeout=WAKE_TIMEOUT)
    assert posted.status_code == 200, posted.text
    assert posted.text.strip() == expected

    # Chunked (no Content-Length): the wake service must stream it through as well.
    put_to_sleep(platform, app)
    chunks = [body[i : i + 64 * 1024] for i in range(0, len(body), 64 * 1024)]
    with requests.Session() as http:
        http.trust_env = False
        posted = http.post(url, data=iter(chunks), headers=headers, timeout=WAKE_TIMEOUT)
    assert posted.status_code == 200, posted.text
    assert posted.text.strip() == expected


def test_concurrent_first_requests_start_exactly_one_instance(
    platform: Platform, apps: Apps
) -> None:
    app = apps.busy
    put_to_sleep(platform, app)
    before = all_container_ids(app)
    woke_before = len(events(platform, app, "app_woke"))
    barrier = threading.Barrier(STAMPEDE)
    answers: list[tuple[int, str]] = []
    errors: list[str] = []

    def one() -> None:
        try:
            barrier.wait(timeout=30)
            reply = get(platform, app)
            answers.append((reply.status_code, reply.text))
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=one, daemon=True) for _ in range(STAMPEDE)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=WAKE_TIMEOUT + 30)

    assert errors == []
    assert [status for status, _ in answers] == [200] * STAMPEDE, answers
    hosts = {text.split(" on ")[-1].strip() for _, text in answers}
    assert len(hosts) == 1, hosts  # every answer came from the same start
    assert len(all_container_ids(app) - before) == 1
    assert len(running(app)) == 1
    assert len(events(platform, app, "app_woke")) == woke_before + 1


def test_a_vanished_container_is_started_anew_on_the_next_request(
    platform: Platform, apps: Apps
) -> None:
    """The reconciler passes every 30 s: the request must not wait for it."""
    app = apps.busy
    first = get(platform, app)  # awake (it may have been asleep when run on its own)
    assert first.status_code == 200, first.text
    [container] = running(app)
    old_host = first.text.split(" on ")[-1].strip()

    container.remove(force=True)
    started = time.monotonic()
    reply = get(platform, app)
    took = time.monotonic() - started

    assert reply.status_code == 200, reply.text
    new_host = reply.text.split(" on ")[-1].strip()
    assert new_host != old_host
    assert took < START_TIMEOUT, f"the request took {took:.1f} s"
    [fresh] = running(app)
    assert fresh.id != container.id
    assert not sleeping(platform, app)
    assert [i["state"] for i in info(platform, app)["instances"]] == ["live"]


def test_a_wake_that_never_listens_answers_503_and_records_wake_failed(
    platform: Platform, apps: Apps
) -> None:
    app = apps.failing
    port = free_port()
    with Receiver(port, WEBHOOK_RECEIVER_HOST) as receiver:
        url = f"http://{WEBHOOK_RECEIVER_HOST}:{port}/hook"
        subscribed = platform.api(
            "POST",
            f"/apps/{app}/webhooks",
            json={"url": url, "events": ["wake_failed"], "secret": secrets.token_hex(24)},
        )
        assert subscribed.status_code == 201, subscribed.text
        # The config change that set NEVER_LISTEN_AFTER rolled the app: its instance listens.
        wait_until(lambda: info(platform, app)["release"]["version"] == 2, ROLL_TIMEOUT, "no v2")
        wait_until(
            lambda: [i["state"] for i in info(platform, app)["instances"]] == ["live"],
            ROLL_TIMEOUT,
            "v2 never went live",
        )
        put_to_sleep(platform, app)
        time.sleep(max(0.0, apps.never_listen_after - time.time() + 1))

        started = time.monotonic()
        failed = get(platform, app)
        took = time.monotonic() - started

        assert failed.status_code == 503, failed.text
        assert int(failed.headers["Retry-After"]) > 0
        assert app in failed.text and "could not start" in failed.text, failed.text
        assert took < START_TIMEOUT + 15
        [event] = events(platform, app, "wake_failed")
        wait_until(lambda: bool(receiver.received), 60, "the webhook never heard wake_failed")
        heard = [b for _, b in receiver.received if b"wake_failed" in b]
        assert heard and app.encode() in heard[0]
        assert not running(app)  # what the failed wake started is gone

        # Within the backoff: the same 503 at once, and no new start.
        ids = all_container_ids(app)
        started = time.monotonic()
        again = get(platform, app)
        assert again.status_code == 503
        assert "Retry-After" in again.headers
        assert time.monotonic() - started < 3
        assert all_container_ids(app) == ids
        assert len(events(platform, app, "wake_failed")) == 1
        assert event["message"]


def test_deploy_config_and_rollback_wake_a_sleeping_app_and_scale_keeps_it_asleep(
    platform: Platform, apps: Apps
) -> None:
    app = apps.rolled

    # Scale: the formation is recorded, nothing starts until a request.
    put_to_sleep(platform, app)
    scaled = platform.api("POST", f"/apps/{app}/scale", json={"web": 2})
    assert scaled.status_code == 200, scaled.text
    time.sleep(3)
    assert sleeping(platform, app)
    assert running(app) == []
    assert info(platform, app)["formation"]["web"] == 2
    assert get(platform, app).status_code == 200
    wait_until(lambda: len(running(app)) == 2, 60, "the wake did not start the two instances")
    assert not sleeping(platform, app)
    assert platform.api("POST", f"/apps/{app}/scale", json={"web": 1}).status_code == 200
    wait_until(lambda: len(running(app)) == 1, 60, "scaling down to one did not happen")

    # Deploy: the new release goes live and the app is awake without a request.
    put_to_sleep(platform, app)
    accepted = start_deploy(platform, app, app_source("v2"))
    assert accepted.status_code == 202, accepted.text
    done = wait_deploy(platform, app, accepted.json()["id"])
    assert done["state"] == "succeeded", log_of(platform, app, done["id"])
    assert_awake_without_a_request(platform, app)
    assert get(platform, app).text.startswith("hello from v2 on ")

    # Config change.
    put_to_sleep(platform, app)
    changed = platform.api("PATCH", f"/apps/{app}/config", json={"GREETING": "howdy"})
    assert changed.status_code == 200, changed.text
    wait_until(lambda: info(platform, app)["release"]["version"] == 3, ROLL_TIMEOUT, "no v3")
    assert_awake_without_a_request(platform, app)
    assert get(platform, app).text.startswith("howdy from v2 on ")

    # Rollback.
    put_to_sleep(platform, app)
    rolled = platform.api("POST", f"/apps/{app}/rollback", json={"version": 1})
    assert rolled.status_code in (200, 201), rolled.text
    wait_until(lambda: info(platform, app)["release"]["version"] == 4, ROLL_TIMEOUT, "no v4")
    assert_awake_without_a_request(platform, app)
    assert get(platform, app).text.startswith("hello from v1 on ")


def assert_awake_without_a_request(platform: Platform, app: str) -> None:
    """The roll woke it: shown awake, with a live instance, before anyone asked."""

    def awake() -> bool:
        shown = info(platform, app)
        states = [i["state"] for i in shown["instances"]]
        return not shown["sleeping"] and states == ["live"] and len(running(app)) == 1

    wait_until(awake, ROLL_TIMEOUT, f"{app} is not awake after the roll")
