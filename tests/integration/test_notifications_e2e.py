"""The whole notification chain on a running platform, one link after another, for real.

An app's process crashes, runs out of memory or crash-loops inside its container; Navi writes a
note; the collector turns it into an event; the worker POSTs it, signed, to a real receiver on
127.0.0.2 (the one loopback address the test platform allows); the delivery is listed as
delivered; supervisord brings the app back (or gives up).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
import requests

from tests.helpers import free_port
from tests.integration.platform import WEBHOOK_RECEIVER_HOST, Platform
from tests.integration.test_e2e_api import deploy, log_of, new_app, tar_files
from tests.integration.test_webhooks_delivery import Receiver

pytestmark = pytest.mark.slow

T = TypeVar("T")
MB = 1024**2
CHAIN_TIMEOUT = 120  # seconds from the trigger to the event, its delivery, or the restart
SIGNATURE_TOLERANCE = 300
WATCHED_EVENTS = ["crash", "oom", "crash_loop"]

# A stdlib-only app run by its Procfile. /crash and /loop answer, then end the process with
# status 3 a moment later; /oom answers, then allocates (and touches) HOG_STEPS * 100 MB. Once
# /loop has left the marker in $HOME, every start exits at once: a crash loop.
APP = """\
import os
import sys
import threading
import time
from pathlib import Path
from wsgiref.simple_server import make_server

MARKER = Path(os.environ["HOME"]) / "crash-loop-marker"
if MARKER.exists():
    print("marker found, exiting at start", flush=True)
    sys.exit(4)


def exit_soon(status):
    time.sleep(0.3)  # the answer is on its way first
    os._exit(status)


def hog():
    time.sleep(0.5)  # the answer is on its way first: each fill below holds the GIL
    blocks = []
    for step in range(HOG_STEPS):
        blocks.append(b"\\xff" * (100 * 1024 * 1024))  # filled, so every page is resident
        print("holding", (step + 1) * 100, "MB", flush=True)
    print("the memory limit never struck", flush=True)


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/crash":
        threading.Thread(target=exit_soon, args=(3,)).start()
    elif path == "/oom":
        threading.Thread(target=hog).start()
    elif path == "/loop":
        MARKER.touch()
        threading.Thread(target=exit_soon, args=(3,)).start()
    body = ("ok " + path + " pid " + str(os.getpid()) + "\\n").encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


make_server("0.0.0.0", int(os.environ["PORT"]), application).serve_forever()
"""


def app_source(memory_limit: int) -> bytes:
    """The app, sized to allocate three times the memory limit in 100 MB steps."""
    steps = 3 * memory_limit // (100 * MB) + 1
    code = f"HOG_STEPS = {steps}\n" + APP
    return tar_files({"requirements.txt": "", "Procfile": "web: python3 app.py\n", "app.py": code})


# ----------------------------------------------------------------------------- helpers


def wait_for(find: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll ``find`` every half second until it returns something; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = find()
        if found is not None:
            return found
        time.sleep(0.5)
    raise AssertionError(f"{what} (waited {timeout} s)")


@dataclass
class Watched:
    """A deployed app with a webhook that points at a receiver of this test run."""

    platform: Platform
    name: str
    webhook_id: int
    secret: str
    receiver: Receiver

    def get(self, path: str) -> requests.Response | None:
        try:
            return self.platform.http_get_app(self.name, path, timeout=10)
        except requests.RequestException:
            return None

    def pid(self) -> int | None:
        """The web process's pid from its own answer to ``/``, None while it does not answer."""
        response = self.get("/")
        if response is None or response.status_code != 200:
            return None
        return int(response.text.split()[-1])

    def events(self, type: str) -> list[dict[str, Any]]:
        listed = self.platform.api("GET", f"/apps/{self.name}/events", params={"type": type})
        assert listed.status_code == 200, listed.text
        return list(listed.json())

    def last_event_id(self) -> int:
        listed = self.platform.api("GET", f"/apps/{self.name}/events", params={"limit": 1})
        assert listed.status_code == 200, listed.text
        return max((e["id"] for e in listed.json()), default=0)

    def new_event(self, type: str, after: int) -> dict[str, Any] | None:
        """The oldest ``type`` event newer than event ``after``, if there is one yet."""
        newer = [e for e in self.events(type) if e["id"] > after]
        return min(newer, key=lambda e: e["id"]) if newer else None

    def received(self, event_id: int) -> tuple[dict[str, str], bytes] | None:
        """The receiver's POST carrying event ``event_id``, if it came."""
        for headers, body in list(self.receiver.received):
            if json.loads(body)["event"]["id"] == event_id:
                return headers, body
        return None

    def delivered(self, event_id: int) -> dict[str, Any] | None:
        """The delivery of event ``event_id`` once the platform lists it as delivered."""
        path = f"/apps/{self.name}/webhooks/{self.webhook_id}/deliveries"
        listed = self.platform.api("GET", path)
        assert listed.status_code == 200, listed.text
        for delivery in listed.json():
            if delivery["event_id"] == event_id and delivery["state"] == "delivered":
                return dict(delivery)
        return None

    def web_process(self) -> dict[str, Any]:
        listed = self.platform.api("GET", f"/apps/{self.name}/processes")
        assert listed.status_code == 200, listed.text
        (web,) = [p for p in listed.json()["processes"] if p["name"] == "web.1"]
        return dict(web)


@contextmanager
def watched_app(platform: Platform, prefix: str, source: bytes | None = None) -> Iterator[Watched]:
    """Deploy the app (or ``source``), subscribe a webhook to crash, oom and crash_loop; remove
    it all after."""
    port = free_port()
    secret = secrets.token_hex(24)
    with Receiver(port, WEBHOOK_RECEIVER_HOST) as receiver:
        name = new_app(platform, prefix)
        try:
            source = source or app_source(platform.settings.default_memory)
            done = deploy(platform, name, source)
            assert done["state"] == "succeeded", log_of(platform, name, done["id"])
            url = f"http://{WEBHOOK_RECEIVER_HOST}:{port}/hook"
            subscribed = platform.api(
                "POST",
                f"/apps/{name}/webhooks",
                json={"url": url, "events": WATCHED_EVENTS, "secret": secret},
            )
            assert subscribed.status_code == 201, subscribed.text
            yield Watched(platform, name, int(subscribed.json()["id"]), secret, receiver)
        finally:
            platform.api("DELETE", f"/apps/{name}")


def assert_signed(headers: dict[str, str], body: bytes, secret: str) -> None:
    """``Slipway-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">``, checked here."""
    parts = dict(part.split("=", 1) for part in headers["Slipway-Signature"].split(","))
    assert set(parts) == {"t", "v1"}, headers["Slipway-Signature"]
    signed = parts["t"].encode() + b"." + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected), "the signature does not match the body"
    assert abs(time.time() - int(parts["t"])) < SIGNATURE_TOLERANCE


def assert_notified(app: Watched, event: dict[str, Any]) -> dict[str, Any]:
    """The event reached the receiver, signed, and is listed as delivered; the payload."""
    what = f"{event['type']} event {event['id']} of {app.name}"
    headers, body = wait_for(
        lambda: app.received(event["id"]), CHAIN_TIMEOUT, f"the receiver never got the {what}"
    )
    assert_signed(headers, body, app.secret)
    payload = json.loads(body)["event"]
    assert (payload["app"], payload["type"]) == (app.name, event["type"])
    assert payload["message"] == event["message"]
    delivery = wait_for(
        lambda: app.delivered(event["id"]), CHAIN_TIMEOUT, f"the {what} was never delivered"
    )
    assert delivery["event_type"] == event["type"]
    assert delivery["attempt_log"][-1]["status_code"] == 200
    return dict(payload)


def trigger(app: Watched, path: str, kind: str) -> tuple[dict[str, Any], int]:
    """GET ``path`` through the router; the ``kind`` event it raised and the pid before it."""
    pid = wait_for(app.pid, CHAIN_TIMEOUT, f"{app.name} does not answer before {path}")
    before = app.last_event_id()
    answered = app.platform.http_get_app(app.name, path, timeout=30)
    assert answered.status_code == 200, answered.text
    event = wait_for(
        lambda: app.new_event(kind, before), CHAIN_TIMEOUT, f"no {kind} event after GET {path}"
    )
    return event, pid


def answers_with_a_new_pid(app: Watched, old_pid: int) -> None:
    def restarted() -> int | None:
        pid = app.pid()
        return pid if pid is not None and pid != old_pid else None

    def running() -> bool | None:  # STARTING for startsecs, though it answers already
        return app.web_process()["state"] == "RUNNING" or None

    wait_for(restarted, CHAIN_TIMEOUT, f"{app.name} did not answer again after its restart")
    wait_for(running, CHAIN_TIMEOUT, f"supervisord never saw {app.name} RUNNING again")


# ----------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def app(running_platform: Platform) -> Iterator[Watched]:
    with watched_app(running_platform, "notify") as watched:
        yield watched


def test_a_crash_is_an_event_and_a_signed_delivery_and_the_app_comes_back(app: Watched) -> None:
    event, pid = trigger(app, "/crash", "crash")

    assert (event["data"]["source"], event["data"]["process"]) == ("navi", "web")
    assert event["data"]["exit_status"] == 3
    assert event["instance_id"] is not None
    payload = assert_notified(app, event)
    assert payload["data"]["exit_status"] == 3
    answers_with_a_new_pid(app, pid)


def test_memory_past_the_limit_is_an_oom_event_and_the_app_comes_back(app: Watched) -> None:
    event, pid = trigger(app, "/oom", "oom")

    # Navi saw the container's OOM-kill counter rise as supervisord reported the kill.
    assert (event["data"]["source"], event["data"]["process"]) == ("navi", "web")
    assert event["data"]["signal"] == "SIGKILL" and event["data"]["oom_kills"] >= 1
    assert "ran out of memory" in event["message"]
    assert_notified(app, event)
    answers_with_a_new_pid(app, pid)
    # The hog was killed before it got anywhere near the end of its allocation.
    assert app.new_event("crash", event["id"]) is None


def test_a_crash_loop_gives_up_and_raises_crash_loop(running_platform: Platform) -> None:
    settings = running_platform.settings
    with watched_app(running_platform, "loop") as looping:
        event, _ = trigger(looping, "/loop", "crash_loop")

        assert event["data"]["crashes"] >= settings.crash_loop_count
        assert event["data"]["window"] == settings.crash_loop_window
        crashes = [e for e in looping.events("crash") if e["instance_id"] == event["instance_id"]]
        assert len(crashes) >= settings.crash_loop_count
        assert_notified(looping, event)

        def fatal() -> dict[str, Any] | None:
            web = looping.web_process()
            return web if web["state"] == "FATAL" else None

        web = wait_for(fatal, CHAIN_TIMEOUT, "supervisord never gave up on the crash loop")
        assert web["instance_state"] == "crashed"
        # The notes of the last retries and of FATAL come in after it: still one crash_loop.
        time.sleep(3 * settings.notifications_poll)
        assert len(looping.events("crash_loop")) == 1
