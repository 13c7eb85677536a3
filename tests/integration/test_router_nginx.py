"""The router against a real nginx on a free port, with tiny upstream servers in this process."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from slipway.config import Settings
from slipway.router.base import Route
from slipway.router.nginx import NginxRouter, RouterError
from tests.helpers import free_port, wait_until

pytestmark = pytest.mark.slow


class _Echo(BaseHTTPRequestHandler):
    """Answers with its server's name, the path it saw and the forwarded headers."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        body = "|".join(
            [
                self.server.name,  # type: ignore[attr-defined]
                self.path,
                self.headers.get("X-Forwarded-Host", ""),
                self.headers.get("X-Forwarded-Prefix", ""),
                self.headers.get("X-Forwarded-For", ""),
            ]
        ).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[object]:
    """Start named echo servers on free ports; all stopped after the test."""
    servers: list[ThreadingHTTPServer] = []

    def start(name: str) -> int:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
        server.daemon_threads = True
        server.name = name  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return int(server.server_address[1])

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def router(settings: Settings) -> Iterator[NginxRouter]:
    port = free_port()
    router = NginxRouter(settings.with_overrides(router_bind=f"127.0.0.1:{port}"))
    router.start()
    yield router
    router.stop()
    router.release_switch()


def _url(router: NginxRouter, path: str = "/") -> str:
    return f"http://{router.settings.router_bind}{path}"


def _get(router: NginxRouter, path: str = "/", host: str | None = None) -> requests.Response:
    headers = {"Host": host} if host else {}
    return requests.get(_url(router, path), headers=headers, timeout=5, allow_redirects=False)


def test_routes_by_host_to_the_apps_instances(router: NginxRouter, upstream) -> None:
    router.apply([Route("hello", [upstream("a")]), Route("other", [upstream("b")])])

    response = _get(router, "/some/path?x=1", host="hello.localhost")

    assert response.status_code == 200
    name, path, forwarded_host, _, forwarded_for = response.text.split("|")
    assert (name, path, forwarded_host) == ("a", "/some/path?x=1", "hello.localhost")
    assert forwarded_for == "127.0.0.1"
    assert _get(router, "/", host="other.localhost").text.startswith("b|")


def test_routes_by_path_with_the_prefix_stripped(router: NginxRouter, upstream) -> None:
    router.apply([Route("hello", [upstream("a")])])

    response = _get(router, "/hello/some/path?x=1")

    assert response.status_code == 200
    name, path, _, prefix, _ = response.text.split("|")
    assert (name, path, prefix) == ("a", "/some/path?x=1", "/hello")
    redirect = _get(router, "/hello")
    assert redirect.status_code == 301 and redirect.headers["Location"] == "/hello/"


def test_requests_are_balanced_over_the_live_instances(router: NginxRouter, upstream) -> None:
    router.apply([Route("hello", [upstream("a"), upstream("b")])])

    names = {_get(router, "/", host="hello.localhost").text.split("|")[0] for _ in range(10)}

    assert names == {"a", "b"}


def test_a_dead_instance_is_skipped_for_the_next_one(router: NginxRouter, upstream) -> None:
    router.apply([Route("hello", [free_port(), upstream("a")])])

    answers = [_get(router, "/", host="hello.localhost") for _ in range(6)]

    assert [r.status_code for r in answers] == [200] * 6


def test_an_unknown_app_gets_a_clear_404(router: NginxRouter) -> None:
    router.apply([])

    by_host = _get(router, "/", host="nope.localhost")
    by_path = _get(router, "/nope/x")

    assert by_host.status_code == 404
    assert by_host.text == "No app named nope is deployed here.\n"
    assert by_path.status_code == 404
    assert by_path.text == "No app named nope is deployed here.\n"


def test_an_app_without_live_instances_gets_a_clear_503(router: NginxRouter) -> None:
    router.apply([Route("idle", [])])

    for response in (_get(router, "/", host="idle.localhost"), _get(router, "/idle/")):
        assert response.status_code == 503
        assert "The app idle has no running instance" in response.text


def test_a_configuration_nginx_refuses_keeps_the_old_one(router: NginxRouter, upstream) -> None:
    router.apply([Route("hello", [upstream("a")])])
    before = router.sites_conf.read_text()

    with pytest.raises(RouterError, match="old one stays in place"):
        router.apply([Route("hello", [0])])  # port 0: nginx -t says "invalid port"

    assert router.sites_conf.read_text() == before
    assert _get(router, "/", host="hello.localhost").text.startswith("a|")
    assert not list(router.dir.glob("*.tmp"))


def test_reloads_while_requests_run_drop_nothing(router: NginxRouter, upstream) -> None:
    old, new = upstream("old"), upstream("new")
    router.apply([Route("hello", [old])])
    failures: list[str] = []
    seen: set[str] = set()
    stop = threading.Event()

    def load() -> None:
        deadline = time.monotonic() + 20
        for _ in range(2000):
            if stop.is_set() or time.monotonic() > deadline:
                return
            try:
                response = _get(router, "/", host="hello.localhost")
                if response.status_code != 200:
                    failures.append(str(response.status_code))
                seen.add(response.text.split("|")[0])
            except requests.RequestException as error:
                failures.append(repr(error))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for i in range(10):
        router.apply([Route("hello", [old, new] if i % 2 == 0 else [new])])
        time.sleep(0.15)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)

    assert failures == []
    assert seen == {"old", "new"}


def test_a_switch_keeps_every_keep_alive_connection_and_does_not_reload(
    router: NginxRouter, upstream
) -> None:
    """Clients on kept-alive connections across switches: no error, no reload of nginx.

    nginx's own connections to an instance live at most its keepalive_time (1 s), so a switch
    reaches every client within about a second; each color is held longer than that.
    """
    ports = [upstream("blue"), upstream("green")]
    router.apply([Route("hello", [ports[0]])])
    workers = router.worker_pids()
    failures: list[str] = []
    seen: set[str] = set()
    stop = threading.Event()

    def load() -> None:
        deadline = time.monotonic() + 30
        with requests.Session() as client:  # one kept-alive connection, reused throughout
            for _ in range(3000):
                if stop.is_set() or time.monotonic() > deadline:
                    return
                try:
                    response = client.get(
                        _url(router), headers={"Host": "hello.localhost"}, timeout=5
                    )
                    if response.status_code != 200:
                        failures.append(str(response.status_code))
                    seen.add(response.text.split("|")[0])
                except requests.RequestException as error:
                    failures.append(repr(error))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for i in range(6):
        router.apply([Route("hello", [ports[(i + 1) % 2]])])
        time.sleep(0.1 if i < 4 else 1.5)  # quick switches, then each color held
    seen_before = set(seen)
    time.sleep(0.3)
    stop.set()
    for thread in threads:
        thread.join(timeout=40)
    after = {_get(router, "/", host="hello.localhost").text.split("|")[0] for _ in range(10)}

    assert failures == []
    assert seen_before == {"blue", "green"}
    assert after == {"blue"}  # the last switch (i = 5) went to blue
    assert router.worker_pids() == workers  # the same workers: nginx was never reloaded


def test_routes_come_back_when_the_nat_table_was_emptied(router: NginxRouter, upstream) -> None:
    """A host restart empties the kernel's NAT table: the next start writes the chain again."""
    port = upstream("back")
    router.apply([Route("hello", [port])])
    assert router.nat is not None
    nat = router.nat
    hook = ["OUTPUT", "-d", nat.network, "-p", "tcp", "-j", nat.chain]
    for args in (["-D", *hook], ["-F", nat.chain], ["-X", nat.chain]):  # a restart's empty table
        subprocess.run(["iptables", "-w", "-t", "nat", *args], check=True, capture_output=True)
    assert nat.rules_file.exists()  # the platform's own record still says the rules are there
    router.stop()
    router.start()  # `slipway server up`: ensure_config makes the chain anew

    router.apply([Route("hello", [port])])

    assert _get(router, "/", host="hello.localhost").text.startswith("back|")


# ----------------------------------------------------------------------------- sleep and wake


class _WakeStandIn(BaseHTTPRequestHandler):
    """Stands in for the wake service: answers ``wake|<X-Slipway-App>|<path>``."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        body = f"wake|{self.headers.get('X-Slipway-App', '')}|{self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(params=["nat", "reload"])
def wake_router(settings: Settings, request: pytest.FixtureRequest) -> Iterator[NginxRouter]:
    """A router (with each switch) whose wake service is a stand-in on a free port of its own."""
    stand_in = ThreadingHTTPServer(("127.0.0.1", 0), _WakeStandIn)
    stand_in.daemon_threads = True
    threading.Thread(target=stand_in.serve_forever, daemon=True).start()
    wake_bind = f"127.0.0.1:{stand_in.server_address[1]}"
    router = NginxRouter(
        settings.with_overrides(
            router_bind=f"127.0.0.1:{free_port()}",
            wake_bind=wake_bind,
            router_switch=request.param,
        )
    )
    router.start()
    yield router
    router.stop()
    router.release_switch()
    stand_in.shutdown()
    stand_in.server_close()


def test_a_sleeping_apps_requests_reach_the_wake_service_with_its_name(
    wake_router: NginxRouter,
) -> None:
    wake_router.apply([Route("asleep", [], wakeable=True, sleeping=True)])

    by_host = requests.get(
        _url(wake_router, "/a/b?x=1"),
        headers={"Host": "asleep.localhost", "X-Slipway-App": "someone-else"},
        timeout=5,
    )
    by_path = _get(wake_router, "/asleep/c")

    assert (by_host.status_code, by_host.text) == (200, "wake|asleep|/a/b?x=1")
    assert (by_path.status_code, by_path.text) == (200, "wake|asleep|/c")
    # nginx's traffic log names the app (flushed within 2 s): what the sleeper reads.
    wait_until(
        lambda: " up_asleep" in _read(wake_router.traffic_log), 10, "the traffic log names it"
    )


def test_an_awake_app_whose_instance_port_is_closed_falls_to_the_wake_service(
    wake_router: NginxRouter, upstream
) -> None:
    wake_router.apply([Route("hello", [free_port()], wakeable=True)])

    answers = [_get(wake_router, "/", host="hello.localhost") for _ in range(4)]

    assert [(r.status_code, r.text) for r in answers] == [(200, "wake|hello|/")] * 4
    # Started anew: the fast path again once nginx tries the instance's address (it rests a
    # failed server for fail_timeout, 2 s; meanwhile the wake service passes requests on).
    wake_router.apply([Route("hello", [upstream("a")], wakeable=True)])
    wait_until(
        lambda: _get(wake_router, "/", host="hello.localhost").text.startswith("a|"),
        5,
        "requests go to the instance again",
    )


def test_an_app_sleeps_and_wakes_without_a_failed_request(
    wake_router: NginxRouter, upstream
) -> None:
    """Through the NAT switch: to sleep, nginx moves to the wake service before the instance's
    rule goes; to wake, the rule comes before nginx moves back."""
    port = upstream("a")
    awake = [Route("hello", [port], wakeable=True), Route("other", [upstream("b")], True)]
    asleep = [Route("hello", [], wakeable=True, sleeping=True), awake[1]]
    seen: list[str] = []
    for routes in (awake, asleep, awake, asleep):
        wake_router.apply(routes)
        response = _get(wake_router, "/", host="hello.localhost")
        assert response.status_code == 200
        seen.append(response.text.split("|")[0])
        assert _get(wake_router, "/", host="other.localhost").text.startswith("b|")

    assert seen == ["a", "wake", "a", "wake"]


def test_an_app_that_is_not_wakeable_still_answers_503(wake_router: NginxRouter) -> None:
    wake_router.apply([Route("idle", []), Route("zero", [], wakeable=False, sleeping=True)])

    for host in ("idle.localhost", "zero.localhost"):
        response = _get(wake_router, "/", host=host)
        assert response.status_code == 503 and "has no running instance" in response.text


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def test_start_is_idempotent_and_stop_ends_nginx(settings: Settings) -> None:
    router = NginxRouter(settings.with_overrides(router_bind=f"127.0.0.1:{free_port()}"))
    router.start()
    pid = router.pid()
    router.start()

    assert pid is not None and router.pid() == pid
    workers = router.worker_pids()
    assert workers and pid not in workers

    def titled() -> bool:  # a worker just forked still carries its master's title for a moment
        titles = [Path(f"/proc/{w}/cmdline").read_bytes() for w in router.worker_pids()]
        return bool(titles) and all(b"nginx: worker process" in t for t in titles)

    wait_until(titled, 5, "nginx's workers call themselves worker processes")
    router.stop()
    router.release_switch()
    assert router.pid() is None
    assert router.worker_pids() == set()
    with pytest.raises(requests.ConnectionError):
        _get(router, "/")
