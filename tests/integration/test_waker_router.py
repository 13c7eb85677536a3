"""The wake service behind the real router: nginx hands it a sleeping app's requests, and an
awake app's requests when its instances refuse; the wake is a fake, the instances are small
HTTP servers in this process."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from slipway.config import Settings
from slipway.host.waker import Waker, WakeServer
from slipway.router.base import Route
from slipway.router.nginx import NginxRouter
from tests.helpers import free_port
from tests.unit.test_waker import Backend, FakeWake

pytestmark = pytest.mark.slow

Wakes = Callable[[FakeWake], None]


@pytest.fixture
def backend() -> Iterator[Backend]:
    made = Backend()
    yield made
    made.close()


@pytest.fixture
def router(settings: Settings) -> Iterator[NginxRouter]:
    tuned = settings.with_overrides(
        router_bind=f"127.0.0.1:{free_port()}", wake_bind=f"127.0.0.1:{free_port()}"
    )
    router = NginxRouter(tuned)
    router.start()
    yield router
    router.stop()
    router.release_switch()


@pytest.fixture
def waking(router: NginxRouter) -> Iterator[Wakes]:
    """Serve the wake service on the router's wake_bind with the given fake wake."""
    stops: list[tuple[threading.Event, threading.Thread]] = []

    def start(wake: FakeWake) -> None:
        host, _, port = router.settings.wake_bind.rpartition(":")
        server = WakeServer((host, int(port)), Waker(wake, backoff=5, backoff_max=20))
        stop = threading.Event()
        thread = threading.Thread(target=server.serve_until, args=(stop,))
        thread.start()
        stops.append((stop, thread))

    yield start
    for stop, thread in stops:
        stop.set()
        thread.join(15)


def _url(router: NginxRouter, path: str = "/") -> str:
    return f"http://{router.settings.router_bind}{path}"


def test_a_sleeping_apps_stampede_wakes_it_once_through_nginx(
    router: NginxRouter, waking: Wakes, backend: Backend
) -> None:
    wake = FakeWake([[backend.port]], delay=0.3)
    waking(wake)
    router.apply([Route("shop", [], wakeable=True, sleeping=True)])

    def get(_: int) -> requests.Response:
        return requests.get(_url(router), headers={"Host": "shop.localhost"}, timeout=20)

    with ThreadPoolExecutor(30) as pool:
        answers = list(pool.map(get, range(30)))
    seen = requests.get(
        _url(router, "/shop/headers?x=1"),
        headers={"X-Slipway-App": "forged"},
        timeout=20,
    ).json()

    assert [r.status_code for r in answers] == [200] * 30
    assert {r.text for r in answers} == {f"hello from {backend.port}"}
    assert wake.calls == 1
    headers = {name.lower(): value for name, value in seen["headers"]}
    assert seen["path"] == "/headers?x=1"
    assert headers["x-forwarded-prefix"] == "/shop" and headers["x-forwarded-for"] == "127.0.0.1"
    # nginx replaced the client's header, and the wake service dropped nginx's
    assert "x-slipway-app" not in headers


def test_post_bodies_of_megabytes_pass_nginx_and_the_wake_service_intact(
    router: NginxRouter, waking: Wakes, backend: Backend
) -> None:
    waking(FakeWake([[backend.port]]))
    router.apply([Route("shop", [], wakeable=True, sleeping=True)])
    payload = os.urandom(4 * 1024 * 1024 + 3)
    pieces = (payload[i : i + 256 * 1024] for i in range(0, len(payload), 256 * 1024))

    sized = requests.post(_url(router, "/shop/echo"), data=payload, timeout=30)
    chunked = requests.post(_url(router, "/shop/echo"), data=pieces, timeout=30)

    assert sized.status_code == 200 and sized.content == payload
    assert chunked.status_code == 200 and chunked.content == payload


def test_an_awake_app_whose_instance_refuses_is_woken_by_the_backup(
    router: NginxRouter, waking: Wakes, backend: Backend
) -> None:
    wake = FakeWake([[backend.port]])
    waking(wake)
    router.apply([Route("shop", [free_port()], wakeable=True)])

    response = requests.get(_url(router), headers={"Host": "shop.localhost"}, timeout=20)

    assert response.status_code == 200 and response.text == f"hello from {backend.port}"
    assert wake.calls == 1


def test_a_failed_wake_reaches_the_client_as_a_503_with_retry_after(
    router: NginxRouter, waking: Wakes
) -> None:
    wake = FakeWake([], error="The release v3 of shop has no image.")
    waking(wake)
    router.apply([Route("shop", [], wakeable=True, sleeping=True)])

    first = requests.get(_url(router), headers={"Host": "shop.localhost"}, timeout=20)
    second = requests.get(_url(router, "/shop/"), timeout=20)

    assert first.status_code == 503 and first.headers["Retry-After"] == "5"
    assert (
        "shop could not start: The release v3 of shop has no image. It is tried again in 5 s."
        in first.text
    )
    assert second.status_code == 503 and "shop could not start" in second.text
    assert wake.calls == 1
