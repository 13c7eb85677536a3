"""The wake service: an HTTP/1.1 proxy that starts sleeping apps and hands them their requests.

nginx sends it the requests of sleeping apps, and of awake apps whose instances all refuse
connections (it is their upstream's backup server), with ``X-Slipway-App`` naming the app. The
first request for an app runs one wake; the requests that arrive meanwhile wait for that wake
instead of starting their own (a stampede starts the app once). Then every held request is
proxied to the instance ports the wake returned, round robin. A failed wake answers 503 with
Retry-After, and the requests within the backoff get the same answer at once, so a broken app
is not restarted by every request.

Only the standard library's sockets, threads and time are used: the API process runs this under
gevent's monkey-patching, where the threads become greenlets.
"""

from __future__ import annotations

import html
import http.client
import logging
import math
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from slipway.config import Settings
from slipway.services.errors import SlipwayError

logger = logging.getLogger(__name__)

WakeFn = Callable[[str], list[int]]
"""Starts an app (when it is not running) and returns the host ports of its web instances."""

APP_HEADER = "X-Slipway-App"
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
    }
)
# Not forwarded either: the app header is the router's word to us, Expect was answered here,
# and the body's framing (Content-Length or chunked) is written anew.
NOT_FORWARDED = HOP_BY_HOP | {APP_HEADER.lower(), "expect", "content-length"}

SUCCESS_CACHE = 1.5  # seconds a wake's ports serve a burst without asking wake again
WAKE_MARGIN = 15.0  # beyond start_timeout, how long a held request waits for a running wake
CONNECT_TIMEOUT = 3.0  # to an instance on this host: it accepts at once or is gone
UPSTREAM_TIMEOUT = 120.0  # between reads from an instance (nginx's proxy_read_timeout)
CLIENT_TIMEOUT = 75.0  # between reads from nginx, kept-alive connections included
ACCEPT_POLL = 0.25  # how often the accept loop looks at the stop event
STOP_GRACE = 10.0  # requests in flight at a stop get this long to finish
BUFFER = 64 * 1024
MAX_LINE = 65536


# ---------------------------------------------------------------------------------------------
# Waking, one at a time per app


class WakeDown(Exception):
    """The app cannot be reached now: the reason (one sentence) and when to try again."""

    def __init__(self, reason: str, retry_after: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class Unreachable(Exception):
    """The app woke, but no instance it returned accepts a connection."""


@dataclass
class _Flight:
    """One wake in progress; the requests that arrive meanwhile wait for its outcome."""

    done: threading.Event = field(default_factory=threading.Event)
    ports: list[int] = field(default_factory=list)
    failure: WakeDown | None = None


@dataclass
class _AppState:
    flight: _Flight | None = None
    ports: list[int] = field(default_factory=list)
    fresh_until: float = 0.0
    generation: int = 0  # counts successful wakes, so a stale lease cannot forget a newer one
    turn: int = 0  # round robin
    failures: int = 0
    reason: str = ""
    retry_at: float = 0.0


@dataclass(frozen=True)
class Lease:
    """Ports to try for one request, in round-robin order."""

    ports: list[int]
    generation: int
    fresh: bool  # True: a wake ran for this request; False: a recent wake's ports were reused


class Waker:
    """Single-flight wakes per app, a short cache of their ports, a doubling backoff on failure.

    ``wake`` is the app starter (the database-backed one in production, a fake in unit tests);
    ``clock`` measures backoffs and the cache (monotonic seconds).
    """

    def __init__(
        self,
        wake: WakeFn,
        *,
        backoff: float = 5.0,
        backoff_max: float = 300.0,
        wait_timeout: float = 60.0 + WAKE_MARGIN,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._wake = wake
        self.backoff = backoff
        self.backoff_max = max(backoff_max, backoff)
        self.wait_timeout = wait_timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._apps: dict[str, _AppState] = {}

    @classmethod
    def from_settings(cls, settings: Settings, wake: WakeFn | None = None) -> Waker:
        return cls(
            wake if wake is not None else database_wake(settings),
            backoff=settings.wake_backoff,
            backoff_max=settings.wake_backoff_max,
            wait_timeout=settings.start_timeout + WAKE_MARGIN,
        )

    def lease(self, app: str) -> Lease:
        """The ports to send a request of ``app`` to, waking it (or waiting for its wake) first.

        Raises WakeDown when the wake failed now or within the backoff.
        """
        with self._lock:
            state = self._apps.setdefault(app, _AppState())
            now = self._clock()
            if state.retry_at > now:
                raise WakeDown(state.reason, _seconds(state.retry_at - now))
            if state.ports and state.fresh_until > now and state.flight is None:
                return self._take_turn(state, fresh=False)
            flight = state.flight
            leader = flight is None
            if flight is None:
                flight = state.flight = _Flight()
        if leader:
            self._run(app, state, flight)
        elif not flight.done.wait(self.wait_timeout):
            raise WakeDown(
                f"It is still starting after {_seconds(self.wait_timeout)} s.",
                _seconds(self.backoff),
            )
        if flight.failure is not None:
            raise flight.failure
        with self._lock:
            return self._take_turn(state, fresh=True, ports=flight.ports)

    def forget(self, lease: Lease, app: str) -> None:
        """The leased ports refused: the next lease wakes again (unless someone already did)."""
        with self._lock:
            state = self._apps.get(app)
            if state is not None and state.generation == lease.generation:
                state.ports = []
                state.fresh_until = 0.0

    def _take_turn(self, state: _AppState, fresh: bool, ports: list[int] | None = None) -> Lease:
        ports = list(state.ports if ports is None else ports)
        start = state.turn % len(ports) if ports else 0
        state.turn += 1
        return Lease(ports[start:] + ports[:start], state.generation, fresh)

    def _run(self, app: str, state: _AppState, flight: _Flight) -> None:
        """The leader's part: call wake once, record the outcome, release the waiting requests."""
        started = self._clock()
        ports: list[int] = []
        # Whatever happens (a greenlet killed mid-wake included), the flight ends and the held
        # requests are released: a flight left running would hold every later request.
        failure = "The wake was interrupted."
        try:
            ports = [int(port) for port in self._wake(app)]
            failure = "" if ports else "It has no web instance to answer."
        except SlipwayError as error:
            failure = _sentence(str(error)) or "Its start failed."
        except Exception:
            logger.exception("waking %s failed unexpectedly", app)
            failure = "The wake service failed unexpectedly (the platform log says why)."
        finally:
            self._land(app, state, flight, ports, failure, started)

    def _land(
        self,
        app: str,
        state: _AppState,
        flight: _Flight,
        ports: list[int],
        failure: str,
        started: float,
    ) -> None:
        """Record a wake's outcome (backoff or cached ports) and release the waiting requests."""
        with self._lock:
            now = self._clock()
            seconds = now - started
            if failure:
                state.failures += 1
                backoff = min(self.backoff * 2 ** (state.failures - 1), self.backoff_max)
                state.reason, state.retry_at = failure, now + backoff
                state.ports, state.fresh_until = [], 0.0
                flight.failure = WakeDown(failure, _seconds(backoff))
                logger.warning(
                    "wake %s: failed in %.2f s (%s); next try in %s s",
                    app,
                    seconds,
                    failure,
                    _seconds(backoff),
                )
            else:
                state.failures, state.reason, state.retry_at = 0, "", 0.0
                state.ports, state.fresh_until = ports, now + SUCCESS_CACHE
                state.generation += 1
                flight.ports = ports
                logger.info(
                    "wake %s: up in %.2f s on port(s) %s",
                    app,
                    seconds,
                    ", ".join(map(str, ports)),
                )
            state.flight = None
        flight.done.set()

    def connect(self, app: str) -> tuple[http.client.HTTPConnection, int]:
        """A connection to one of the app's instances, waking the app when needed.

        Ports reused from a recent wake that all refuse lead to one more wake for this request;
        ports from a wake that just ran and refuse raise Unreachable.
        """
        refused: OSError | None = None
        for _attempt in range(2):
            lease = self.lease(app)
            for port in lease.ports:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=CONNECT_TIMEOUT)
                try:
                    conn.connect()
                except OSError as error:
                    conn.close()
                    refused = error
                    continue
                if conn.sock is not None:
                    conn.sock.settimeout(UPSTREAM_TIMEOUT)
                return conn, port
            if lease.fresh:
                break
            self.forget(lease, app)
        why = (refused.strerror if refused is not None else None) or "no port to connect to"
        raise Unreachable(f"{app} woke, but its instance does not accept connections ({why}).")


def _seconds(value: float) -> int:
    return max(1, math.ceil(value - 1e-6))


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    return text if not text or text[-1] in ".!?" else text + "."


def database_wake(settings: Settings) -> WakeFn:
    """The production wake: ``services.sleep.wake`` in a session of its own, one engine reused.

    The session commits even when the wake fails, so the ``wake_failed`` event it recorded
    stays; the failure is raised after the commit.
    """
    engine: Any = None
    engine_lock = threading.Lock()

    def wake(app: str) -> list[int]:
        nonlocal engine
        from slipway.adapters import build_adapters
        from slipway.db import make_engine, make_session_factory, session_scope
        from slipway.services.sleep import wake as wake_app

        with engine_lock:
            if engine is None:
                engine = make_engine(settings)
        failure: SlipwayError | None = None
        with session_scope(make_session_factory(engine)) as session:
            try:
                return wake_app(session, build_adapters(settings), settings, app)
            except SlipwayError as error:
                failure = error
        raise failure

    return wake


# ---------------------------------------------------------------------------------------------
# HTTP


class BadRequest(Exception):
    """The request from nginx cannot be read (a broken chunk, a bad Content-Length)."""


class WakeServer(ThreadingHTTPServer):
    """A thread per connection; ``serve_until`` accepts until a stop event, then drains."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 512  # a stampede's connections wait in the backlog, not in SYN retries

    def __init__(self, address: tuple[str, int], waker: Waker) -> None:
        self.waker = waker
        self.stopping = False
        self._active = 0
        self._idle = threading.Condition()
        self._connections: set[socket.socket] = set()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer's own looks the host's name up, a DNS wait that serves nothing here.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def serve_until(self, stop: threading.Event) -> None:
        """Accept connections until ``stop`` is set; then close the listener and drain."""
        self.socket.settimeout(ACCEPT_POLL)
        try:
            while not stop.is_set():
                try:
                    conn, address = self.socket.accept()
                except TimeoutError:
                    continue
                except OSError:
                    if stop.is_set():
                        break
                    logger.exception("the wake service could not accept a connection")
                    time.sleep(ACCEPT_POLL)
                    continue
                conn.settimeout(None)
                self.process_request(conn, address)
        finally:
            self.close(STOP_GRACE)

    def close(self, grace: float) -> None:
        """Close the listener, let requests in flight finish (bounded), then cut connections."""
        self.stopping = True
        self.server_close()
        deadline = time.monotonic() + grace
        with self._idle:
            while self._active and time.monotonic() < deadline:
                self._idle.wait(min(0.1, max(0.0, deadline - time.monotonic())))
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._idle:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._idle:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.exception("the wake service failed on a request from %s", client_address)

    def request_started(self) -> None:
        with self._idle:
            self._active += 1

    def request_ended(self) -> None:
        with self._idle:
            self._active -= 1
            self._idle.notify_all()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = CLIENT_TIMEOUT
    server: WakeServer
    _body_read = False  # True once the request body was read to its end

    def handle_one_request(self) -> None:
        """Every method is proxied, so the request is read here rather than by ``do_<METHOD>``."""
        try:
            self.raw_requestline = self.rfile.readline(MAX_LINE + 1)
        except (TimeoutError, ConnectionError):
            self.close_connection = True
            return
        if not self.raw_requestline:
            self.close_connection = True
            return
        if len(self.raw_requestline) > MAX_LINE:
            self.send_error(414)
            return
        if not self.parse_request():
            return
        self.server.request_started()
        try:
            self._serve()
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # nginx or the instance went away mid-request
        finally:
            self.server.request_ended()
        if self.server.stopping:
            self.close_connection = True

    def _serve(self) -> None:
        self._body_read = False
        app = (self.headers.get(APP_HEADER) or "").strip()
        if not app:
            self._reply(
                400,
                f"The wake service needs the {APP_HEADER} header naming the app; "
                "requests reach it through the router.",
            )
            return
        try:
            body = self._request_body()
        except BadRequest as error:
            self._reply(400, str(error))
            return
        try:
            upstream, port = self.server.waker.connect(app)
        except WakeDown as down:
            self._reply_down(app, down)
            return
        except Unreachable as error:
            self._reply(502, str(error))
            return
        try:
            self._forward(app, upstream, port, body)
        finally:
            upstream.close()

    # -- the request ------------------------------------------------------------------------

    def _request_body(self) -> Iterator[bytes] | None:
        """The request body as pieces (None: no body); its framing is checked here."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._chunked_body()
        length = self.headers.get("Content-Length")
        if length is None:
            self._body_read = True
            return None
        if not length.strip().isdigit():
            raise BadRequest(f"The Content-Length {length!r} is not a number of bytes.")
        return self._sized_body(int(length))

    def _sized_body(self, length: int) -> Iterator[bytes]:
        remaining = length
        while remaining:
            data = self.rfile.read(min(BUFFER, remaining))
            if not data:
                raise ConnectionError("the request body ended early")
            remaining -= len(data)
            yield data
        self._body_read = True

    def _chunked_body(self) -> Iterator[bytes]:
        while True:
            line = self.rfile.readline(MAX_LINE)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise ConnectionError("a chunk of the request body has no size") from None
            if size == 0:
                break
            remaining = size
            while remaining:
                data = self.rfile.read(min(BUFFER, remaining))
                if not data:
                    raise ConnectionError("the request body ended early")
                remaining -= len(data)
                yield data
            self.rfile.readline(MAX_LINE)  # the CRLF after the chunk
        for _ in range(1000):  # trailers, dropped
            line = self.rfile.readline(MAX_LINE)
            if line in (b"\r\n", b"\n", b""):
                break
        self._body_read = True

    def _forward(
        self,
        app: str,
        upstream: http.client.HTTPConnection,
        port: int,
        body: Iterator[bytes] | None,
    ) -> None:
        upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        dropped = NOT_FORWARDED | _connection_tokens(self.headers.get_all("Connection") or [])
        for name, value in self.headers.items():
            if name.lower() not in dropped:
                upstream.putheader(name, value)
        chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
        if chunked:
            upstream.putheader("Transfer-Encoding", "chunked")
        elif self.headers.get("Content-Length") is not None:
            upstream.putheader("Content-Length", self.headers["Content-Length"].strip())
        try:
            upstream.endheaders()
            for data in body or ():
                upstream.send(b"%x\r\n%b\r\n" % (len(data), data) if chunked else data)
            if chunked:
                upstream.send(b"0\r\n\r\n")
            response = upstream.getresponse()
        except (OSError, http.client.HTTPException):
            self._reply(502, f"{app} woke, but its instance on port {port} did not answer.")
            return
        self._relay(response)

    # -- the response -----------------------------------------------------------------------

    def _relay(self, response: http.client.HTTPResponse) -> None:
        """Status, headers and body back to nginx, streamed; chunked when the length is unknown."""
        self.send_response_only(response.status, response.reason)
        dropped = (
            HOP_BY_HOP
            | {"content-length"}
            | _connection_tokens(response.headers.get_all("Connection") or [])
        )
        for name, value in response.getheaders():
            if name.lower() not in dropped:
                self.send_header(name, value)
        no_body = self.command == "HEAD" or response.status in (204, 304)
        length = response.getheader("Content-Length")
        sized = not response.chunked and length is not None and length.strip().isdigit()
        if sized and length is not None:
            self.send_header("Content-Length", length.strip())
        elif no_body:
            pass
        elif self.request_version >= "HTTP/1.1":
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.close_connection = True
        if not self._body_read:
            self.send_header("Connection", "close")
            self.close_connection = True
        elif self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if no_body:
            return
        chunked = not sized and self.request_version >= "HTTP/1.1"
        expected = int(length) if sized and length is not None else None
        sent = 0
        while True:
            data = response.read1(BUFFER)
            if not data:
                break
            sent += len(data)
            self.wfile.write(b"%x\r\n%b\r\n" % (len(data), data) if chunked else data)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        if expected is not None and sent != expected:
            self.close_connection = True  # the instance ended early: nginx must see it cut

    def _reply_down(self, app: str, down: WakeDown) -> None:
        text = f"{app} could not start: {down.reason} It is tried again in {down.retry_after} s."
        page = (
            "<!doctype html>\n"
            f"<html><head><meta charset=utf-8><title>{html.escape(app)} could not start</title>"
            "</head>\n"
            f"<body><p>{html.escape(text)}</p></body></html>\n"
        )
        self._reply(503, page, retry_after=down.retry_after, content_type="text/html")

    def _reply(
        self,
        status: int,
        text: str,
        retry_after: int | None = None,
        content_type: str = "text/plain",
    ) -> None:
        data = (text if text.endswith("\n") else text + "\n").encode()
        self.send_response_only(status)
        self.send_header("Date", self.date_time_string())
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        if retry_after is not None:
            self.send_header("Retry-After", str(retry_after))
        if not self._body_read:  # the unread body would be taken for the next request
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)


def _connection_tokens(values: list[str]) -> set[str]:
    """Headers named in Connection are hop-by-hop too."""
    return {token.strip().lower() for value in values for token in value.split(",") if token}


# ---------------------------------------------------------------------------------------------
# The service


def serve(settings: Settings, stop: threading.Event, wake: WakeFn | None = None) -> None:
    """Serve on ``settings.wake_bind`` until ``stop`` is set (requests in flight get a grace)."""
    from slipway.host.preflight import split_bind

    server = WakeServer(split_bind(settings.wake_bind, 7002), Waker.from_settings(settings, wake))
    logger.info("the wake service listens on %s", settings.wake_bind)
    server.serve_until(stop)
