"""The wake service over real sockets: a fake wake, real backend HTTP servers on loopback."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from slipway.config import Settings
from slipway.host import waker as waker_module
from slipway.host.waker import Waker, WakeServer
from slipway.services.errors import SlipwayError

# ---------------------------------------------------------------------------------------------
# A backend app: echoes bodies, reports the headers it got, streams without a length


class _Backend(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/stream":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b"one ", b"two ", b"three"):
                self.wfile.write(b"%x\r\n%b\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
            return
        if self.path.startswith("/headers"):
            data = json.dumps({"path": self.path, "headers": self.headers.items()}).encode()
        else:
            data = f"hello from {self.connection.getsockname()[1]}".encode()
        self._send(data)

    def do_POST(self) -> None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or ""):
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if not size:
                    self.rfile.readline()
                    break
                data += self.rfile.read(size)
                self.rfile.readline()
        else:
            data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._send(data)

    def _send(self, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Backend", str(self.connection.getsockname()[1]))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _BackendServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the stampede reaches it at once


class Backend:
    def __init__(self) -> None:
        self.server = _BackendServer(("127.0.0.1", 0), _Backend)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,))
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------------------------
# The fake wake and the service around it


@dataclass
class FakeWake:
    ports: list[list[int]]  # the ports each call returns (the last one repeats)
    error: str = ""
    delay: float = 0.0
    calls: int = 0
    running: int = 0
    most_running: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, app: str) -> list[int]:
        with self.lock:
            self.calls += 1
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            call = self.calls
        try:
            time.sleep(self.delay)
            if self.error:
                raise SlipwayError(self.error)
            return self.ports[min(call, len(self.ports)) - 1]
        finally:
            with self.lock:
                self.running -= 1


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Service:
    server: WakeServer
    stop: threading.Event
    thread: threading.Thread

    def request(
        self,
        path: str = "/",
        app: str | None = "shop",
        method: str = "GET",
        body: object = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[http.client.HTTPResponse, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        try:
            sent = dict(headers or {})
            if app is not None:
                sent["X-Slipway-App"] = app
            conn.request(method, path, body=body, headers=sent)  # type: ignore[arg-type]
            response = conn.getresponse()
            return response, response.read()
        finally:
            conn.close()


Start = Callable[[Waker], Service]


@pytest.fixture
def start() -> Iterator[Start]:
    services: list[Service] = []

    def run(waker: Waker) -> Service:
        server = WakeServer(("127.0.0.1", 0), waker)
        stop = threading.Event()
        thread = threading.Thread(target=server.serve_until, args=(stop,))
        thread.start()
        service = Service(server, stop, thread)
        services.append(service)
        return service

    yield run
    for service in services:
        service.stop.set()
        service.thread.join(5)


@pytest.fixture
def backends() -> Iterator[list[Backend]]:
    made = [Backend(), Backend()]
    yield made
    for backend in made:
        backend.close()


# ---------------------------------------------------------------------------------------------
# Waking


def test_a_stampede_of_fifty_requests_runs_one_wake_and_all_are_answered(
    start: Start, backends: list[Backend]
) -> None:
    wake = FakeWake([[b.port for b in backends]], delay=0.3)
    service = start(Waker(wake))

    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda _: service.request("/"), range(50)))

    assert wake.calls == 1
    assert [response.status for response, _ in answers] == [200] * 50
    served = {response.getheader("X-Backend") for response, _ in answers}
    assert served == {str(b.port) for b in backends}  # round robin over both instances
    assert all(body.startswith(b"hello from ") for _, body in answers)


def test_a_failed_wake_answers_503_with_retry_after_and_the_backoff_holds_without_a_wake(
    start: Start,
) -> None:
    wake = FakeWake([], error="The image slipway/shop:v3 is gone.")
    service = start(Waker(wake, backoff=5, backoff_max=300))

    first, page = service.request("/")
    second, again = service.request("/")

    assert first.status == 503 and first.getheader("Retry-After") == "5"
    assert first.getheader("Content-Type", "").startswith("text/html")
    assert (
        b"shop could not start: The image slipway/shop:v3 is gone. It is tried again in 5 s."
        in page
    )
    assert second.status == 503 and int(second.getheader("Retry-After") or 0) in (4, 5)
    assert b"shop could not start: The image slipway/shop:v3 is gone." in again
    assert wake.calls == 1


def test_the_backoff_doubles_per_failure_up_to_the_maximum_and_resets_on_success(
    start: Start, backends: list[Backend]
) -> None:
    clock = Clock()
    wake = FakeWake([[backends[0].port]], error="It crashed.")
    service = start(Waker(wake, backoff=5, backoff_max=15, clock=clock))

    retry_afters = []
    for _ in range(4):
        response, _body = service.request("/")
        assert response.status == 503
        retry_afters.append(int(response.getheader("Retry-After") or 0))
        clock.now += retry_afters[-1] + 0.1
    wake.error = ""
    woke, _ = service.request("/")
    clock.now += 10  # past the cache of the good wake
    wake.error = "It crashed again."
    failed, _ = service.request("/")

    assert retry_afters == [5, 10, 15, 15]
    assert woke.status == 200
    assert failed.status == 503 and failed.getheader("Retry-After") == "5"
    assert wake.calls == 6


def test_a_request_held_longer_than_the_wait_bound_gets_a_503_and_the_wake_still_counts(
    backends: list[Backend],
) -> None:
    wake = FakeWake([[backends[0].port]], delay=0.6)
    waker = Waker(wake, wait_timeout=0.2)
    leader = threading.Thread(target=waker.lease, args=("shop",))
    leader.start()
    time.sleep(0.05)

    with pytest.raises(waker_module.WakeDown, match="still starting"):
        waker.lease("shop")
    leader.join(5)
    lease = waker.lease("shop")

    assert lease.ports == [backends[0].port] and not lease.fresh
    assert wake.calls == 1 and wake.most_running == 1


def test_a_wake_that_dies_without_an_error_still_releases_the_held_requests() -> None:
    def killed(app: str) -> list[int]:
        raise KeyboardInterrupt  # as a killed greenlet would: not an Exception

    waker = Waker(killed, backoff=5)

    with pytest.raises(KeyboardInterrupt):
        waker.lease("shop")
    with pytest.raises(waker_module.WakeDown, match="The wake was interrupted."):
        waker.lease("shop")


def test_an_app_name_is_required(start: Start) -> None:
    wake = FakeWake([[closed_port()]])
    service = start(Waker(wake))

    response, body = service.request("/", app=None)

    assert response.status == 400
    assert b"X-Slipway-App" in body
    assert wake.calls == 0


def test_cached_ports_that_refuse_lead_to_one_more_wake(
    start: Start, backends: list[Backend]
) -> None:
    gone, alive = backends
    wake = FakeWake([[gone.port], [alive.port]])
    service = start(Waker(wake))

    first, _ = service.request("/")
    gone.close()
    second, body = service.request("/")

    assert first.status == 200 and first.getheader("X-Backend") == str(gone.port)
    assert second.status == 200 and body == f"hello from {alive.port}".encode()
    assert wake.calls == 2


def test_a_woken_port_that_refuses_is_a_502_without_another_wake(start: Start) -> None:
    wake = FakeWake([[closed_port()]])
    service = start(Waker(wake))

    response, body = service.request("/")

    assert response.status == 502
    assert body == b"shop woke, but its instance does not accept connections (%b).\n" % (
        b"Connection refused"
    )
    assert wake.calls == 1


# ---------------------------------------------------------------------------------------------
# Proxying


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_post_body_of_megabytes_arrives_intact(
    start: Start, backends: list[Backend], chunked: bool
) -> None:
    service = start(Waker(FakeWake([[backends[0].port]])))
    payload = os.urandom(3 * 1024 * 1024 + 17)
    body: object = payload
    if chunked:
        body = (payload[i : i + 100_000] for i in range(0, len(payload), 100_000))

    response, echoed = service.request("/echo", method="POST", body=body)

    assert response.status == 200
    assert len(echoed) == len(payload) and echoed == payload


def test_headers_pass_except_hop_by_hop_and_the_app_header(
    start: Start, backends: list[Backend]
) -> None:
    service = start(Waker(FakeWake([[backends[0].port]])))

    response, body = service.request(
        "/headers?q=1&r=two",
        headers={
            "X-Forwarded-For": "203.0.113.9",
            "X-Forwarded-Proto": "https",
            "Keep-Alive": "timeout=5",
            "Connection": "keep-alive, X-Secret",
            "X-Secret": "hop",
            "Proxy-Authorization": "Basic x",
        },
    )

    got = json.loads(body)
    names = {name.lower(): value for name, value in got["headers"]}
    assert response.status == 200
    assert got["path"] == "/headers?q=1&r=two"
    assert names["x-forwarded-for"] == "203.0.113.9" and names["x-forwarded-proto"] == "https"
    assert names["host"] == f"127.0.0.1:{service.server.port}"
    for dropped in ("x-slipway-app", "keep-alive", "x-secret", "proxy-authorization"):
        assert dropped not in names


def test_a_response_without_length_streams_chunked_and_the_connection_is_kept(
    start: Start, backends: list[Backend]
) -> None:
    wake = FakeWake([[backends[0].port]])
    service = start(Waker(wake))
    conn = http.client.HTTPConnection("127.0.0.1", service.server.port, timeout=10)
    try:
        answers, sockets = [], []
        for path in ("/stream", "/", "/stream"):
            conn.request("GET", path, headers={"X-Slipway-App": "shop"})
            response = conn.getresponse()
            answers.append((response.getheader("Transfer-Encoding"), response.read()))
            sockets.append(conn.sock)  # http.client drops it when the server says close
    finally:
        conn.close()

    assert answers[0] == ("chunked", b"one two three")
    assert answers[1][1] == f"hello from {backends[0].port}".encode()
    assert answers[2] == ("chunked", b"one two three")
    assert sockets[0] is not None and sockets == [sockets[0]] * 3  # one connection for all three
    assert wake.calls == 1


def test_stop_closes_the_listener(start: Start) -> None:
    service = start(Waker(FakeWake([[closed_port()]])))
    port = service.server.port
    kept = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    kept.request("GET", "/", headers={"X-Slipway-App": "shop"})
    assert kept.getresponse().read() and kept.sock is not None  # a kept-alive connection, idle

    began = time.monotonic()
    service.stop.set()
    service.thread.join(5)

    assert not service.thread.is_alive() and time.monotonic() - began < 2
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert kept.sock.recv(1) == b""  # the idle connection was closed, not left hanging
    kept.close()


def test_serve_listens_on_the_wake_bind(settings: Settings) -> None:
    port = closed_port()
    tuned = settings.with_overrides(wake_bind=f"127.0.0.1:{port}")
    stop = threading.Event()
    thread = threading.Thread(
        target=waker_module.serve, args=(tuned, stop), kwargs={"wake": FakeWake([], error="No.")}
    )
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/", headers={"X-Slipway-App": "shop"})
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline
                time.sleep(0.02)
        response = conn.getresponse()
        assert response.status == 503 and b"shop could not start: No." in response.read()
        conn.close()
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


GEVENT_STAMPEDE = """
from gevent import monkey

monkey.patch_all()

import threading
from concurrent.futures import ThreadPoolExecutor

from slipway.host.waker import Waker, WakeServer
from tests.unit.test_waker import Backend, FakeWake, Service

backend = Backend()
wake = FakeWake([[backend.port]], delay=0.3)
server = WakeServer(("127.0.0.1", 0), Waker(wake))
stop = threading.Event()
thread = threading.Thread(target=server.serve_until, args=(stop,))
thread.start()
service = Service(server, stop, thread)
payload = bytes(range(256)) * 4096


def post(_):
    return service.request("/echo", method="POST", body=payload)


with ThreadPoolExecutor(50) as pool:
    answers = list(pool.map(post, range(50)))
stop.set()
thread.join(5)
backend.close()
print(
    monkey.is_module_patched("socket") and monkey.is_module_patched("threading"),
    wake.calls,
    sorted({r.status for r, _ in answers}),
    all(b == payload for _, b in answers),
)
"""


def test_under_gevent_monkey_patching_a_stampede_still_runs_one_wake() -> None:
    """The API process runs the service among greenlets: nothing in it may block the hub."""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", GEVENT_STAMPEDE],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True 1 [200] True"


def test_the_database_wake_commits_what_a_failed_wake_recorded_and_reuses_one_engine(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The failed wake's wake_failed event must survive the failure it reports."""
    import types

    from sqlalchemy import text
    from sqlalchemy.orm import Session

    import slipway.adapters
    import slipway.db

    engines = []
    make_engine = slipway.db.make_engine

    def counted(settings: Settings) -> object:
        engine = make_engine(settings)
        engines.append(engine)
        return engine

    def fake_wake(session: Session, adapters: object, settings: Settings, app: str) -> list[int]:
        session.execute(text("INSERT INTO marks VALUES (:app)"), {"app": app})
        if app == "broken":
            raise SlipwayError("The release of broken is gone.")
        return [8001, 8002]

    sleep = types.ModuleType("slipway.services.sleep")
    sleep.wake = fake_wake  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "slipway.services.sleep", sleep)
    monkeypatch.setattr(slipway.db, "make_engine", counted)
    monkeypatch.setattr(slipway.adapters, "build_adapters", lambda settings: object())
    with make_engine(settings).begin() as conn:
        conn.execute(text("CREATE TABLE marks (app TEXT)"))
    wake = waker_module.database_wake(settings)

    ports = wake("shop")
    with pytest.raises(SlipwayError, match="The release of broken is gone."):
        wake("broken")

    with make_engine(settings).connect() as conn:
        marks = sorted(row[0] for row in conn.execute(text("SELECT app FROM marks")))
    assert ports == [8001, 8002]
    assert marks == ["broken", "shop"]
    assert len(engines) == 1
