"""The API process: the JSON API and the dashboard under gevent, with the platform's agents beside.

One process where there were five (gunicorn's master and two workers, the reconciler, the
collector). Every request is a greenlet, so a followed log or a deploy's log stream, a websocket
(``slipway run`` with a terminal) or an upload waiting on the network holds no thread of its own:
a hundred followers cost a hundred small greenlets, and the API keeps answering.

Beside the WSGI server, as greenlets of the same process: the reconciler loop, the collector, the
scheduled space backups, and, when their modules are there, the sleeper (apps idle too long go
to sleep) and the wake service (requests to a sleeping app start it). Each agent is restarted
after a pause when it fails, and every one stops when SIGTERM or SIGINT arrives. SQLite writers
of the process wait for each other cooperatively (:mod:`slipway.host.sqlite_writes`), and so do
file locks (:mod:`slipway.host.cooperative_flock`).

The scheduled backups run as a greenlet too, not in a thread of gevent's threadpool: they run
``tar``, ``zstd`` and the space provider's tools, and gevent's subprocesses can only be waited
for by the main thread's loop. Their Python side is reading pipes (cooperative) and hashing
chunks, so they yield to the API between chunks.

Run it as ``slipway server api``, which starts ``python -m slipway.host.api_server``: gevent has
to patch the standard library (sockets, threads, sleeps, subprocesses) before anything else
imports it, and the CLI imports much before it reaches a command.
"""

from __future__ import annotations

if __name__ == "__main__":  # before every other import: see the docstring
    from gevent import monkey

    monkey.patch_all()

import importlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
from gevent.pywsgi import WSGIHandler, WSGIServer

from slipway.config import Settings, get_settings
from slipway.host.cooperative_flock import cooperative_flock
from slipway.host.preflight import split_bind
from slipway.host.sqlite_writes import serialize_writes

logger = logging.getLogger("slipway.api_server")
access_logger = logging.getLogger("slipway.access")

API_PORT = 7000  # when SLIPWAY_API_BIND names no port
RECONCILE_INTERVAL = 30.0  # seconds between reconciler passes
REQUESTS_STOP_WAIT = 5.0  # seconds open requests (followers, websockets) get after a stop signal
AGENTS_STOP_WAIT = 15.0  # seconds the agents get to finish their pass (a backup, a reconcile)
RESTART_PAUSE = 5.0  # seconds before an agent that failed is started again
ACCESS_TIME = "%d/%b/%Y:%H:%M:%S %z"

Agent = Callable[[Settings, threading.Event], None]


# ----------------------------------------------------------------------------- the HTTP server


class AccessLogHandler(WSGIHandler):  # type: ignore[misc]  # gevent ships no type information
    """gevent's handler, logging each request as gunicorn's access log does (combined format)."""

    def format_request(self) -> str:
        environ = self.environ or {}
        client = self.client_address
        host = client[0] if isinstance(client, tuple) else client
        status = (self._orig_status or self.status or "").split()[:1]
        if not status and environ.get("HTTP_UPGRADE", "").lower() == "websocket":
            status = ["101"]  # the socket was handed over; nothing was written by the server
        return '{} - - [{}] "{}" {} {} "{}" "{}"'.format(
            host or "-",
            time.strftime(ACCESS_TIME, time.localtime(self.time_start or time.time())),
            self.requestline or "",
            status[0] if status else "-",
            self.response_length or "-",
            environ.get("HTTP_REFERER", "-"),
            environ.get("HTTP_USER_AGENT", "-"),
        )

    def log_request(self) -> None:
        access_logger.info(self.format_request())


def make_server(settings: Settings, app: Any = None) -> WSGIServer:
    """The API's WSGI server on ``settings.api_bind`` (not yet listening)."""
    if app is None:
        from slipway.webapp import create_app

        app = create_app(settings)
    return WSGIServer(
        split_bind(settings.api_bind, API_PORT),
        app,
        handler_class=AccessLogHandler,
        log=None,  # AccessLogHandler logs each request itself
        error_log=logger,
    )


# ----------------------------------------------------------------------------- the agents


@dataclass(frozen=True)
class AgentSpec:
    name: str
    run: Agent


def _reconciler(settings: Settings, stop: threading.Event) -> None:
    from slipway.host.reconcile import reconcile_until

    reconcile_until(settings, stop, RECONCILE_INTERVAL)


def _collector(settings: Settings, stop: threading.Event) -> None:
    from slipway.host.collect import collect_until

    collect_until(settings, stop)


def _backups(settings: Settings, stop: threading.Event) -> None:
    from slipway.host.reconcile import start_backup_thread

    thread = start_backup_thread(settings, stop)  # a greenlet: threads are patched
    if thread is not None:
        thread.join()


def optional_agent(module: str, name: str) -> Agent | None:
    """``module.name`` when that module exists (the sleeper and the wake service are optional
    parts); an import error inside an existing module is not hidden."""
    try:
        found = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        return None
    agent: Agent | None = getattr(found, name, None)
    return agent


def agents(settings: Settings) -> list[AgentSpec]:
    """Every agent this process runs beside the API."""
    found = [
        AgentSpec("reconciler", _reconciler),
        AgentSpec("collector", _collector),
    ]
    if settings.space_backup_interval > 0:
        found.append(AgentSpec("space backups", _backups))
    for name, module, function in (
        ("sleeper", "slipway.host.sleeper", "sleep_loop"),
        ("wake service", "slipway.host.waker", "serve"),
    ):
        agent = optional_agent(module, function)
        if agent is not None:
            found.append(AgentSpec(name, agent))
        else:
            logger.info("no %s here (%s is missing)", name, module)
    return found


def keep_running(spec: AgentSpec, settings: Settings, stop: threading.Event) -> None:
    """Run an agent until ``stop``; when it fails or returns early it is started again."""
    while not stop.is_set():
        try:
            spec.run(settings, stop)
        except Exception:
            logger.exception("the %s failed; it starts again in %s s", spec.name, RESTART_PAUSE)
        else:
            if not stop.is_set():
                logger.warning("the %s ended; it starts again in %s s", spec.name, RESTART_PAUSE)
        stop.wait(RESTART_PAUSE)


def start_agents(settings: Settings, stop: threading.Event) -> list[gevent.Greenlet]:
    started = []
    for spec in agents(settings):
        logger.info("starting the %s", spec.name)
        started.append(gevent.spawn(keep_running, spec, settings, stop))
    return started


# ----------------------------------------------------------------------------- the process


def serve(settings: Settings, stop: threading.Event, app: Any = None) -> None:
    """Serve the API and run the agents until ``stop`` is set; then stop both, bounded."""
    server = make_server(settings, app)
    server.start()  # binds now: an address taken fails here, before any agent starts
    logger.info("the API listens on %s", settings.api_bind)
    running = start_agents(settings, stop)
    stop.wait()
    logger.info("stopping: no new requests; open ones get %s s", REQUESTS_STOP_WAIT)
    server.stop(timeout=REQUESTS_STOP_WAIT)
    gevent.joinall(running, timeout=AGENTS_STOP_WAIT)
    left = [greenlet for greenlet in running if not greenlet.dead]
    if left:
        logger.warning("%d agent(s) did not finish in time; they are stopped", len(left))
        gevent.killall(left, timeout=1)


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT (handled in the gevent loop, not in a random frame)."""
    stop = threading.Event()

    def _stop(signum: int) -> None:
        logger.info("signal %d: stopping", signum)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, _stop, signum)
    return stop


def main() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    access = logging.StreamHandler(sys.stdout)
    access.setFormatter(logging.Formatter("%(message)s"))
    access_logger.addHandler(access)
    access_logger.propagate = False
    serialize_writes()  # SQLite writers wait for each other in the loop, not in SQLite's sleep
    cooperative_flock()  # so do takers of a file lock (the router's, the loop files')
    serve(get_settings(), stop_on_signals())


if __name__ == "__main__":
    main()
