"""Start, stop and inspect the control plane on this host.

``up`` prepares the data directory (schema, admin token, volumes, router configuration), writes
the supervisord configuration and starts or updates it: redis-server (when the broker is local),
nginx (the router), the API process and the Celery worker. The API process
(:mod:`slipway.host.api_server`, gevent) also runs the reconciler, the collector, the scheduled
space backups, the sleeper and the wake service; the worker runs builds in two threads of one
process. Four programs, about a third of the memory the eight processes before them took.

``up`` fails loudly (``HostError``, one sentence per part) when a part cannot start: an address
taken before it starts (``host.preflight``), Docker not answering, or a program that does not
reach RUNNING. A failed first start stops what it started.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.config import Settings
from slipway.host import preflight
from slipway.host.accounts import check_app_uid, remove_caches_of_other_uids
from slipway.host.environment import process_env
from slipway.host.preflight import local_redis
from slipway.host.supervisor import HostError, ProcessState, Program, Supervisor
from slipway.router.nginx import NginxRouter
from slipway.runtime.base import RuntimeUnavailable

WORKER_CONCURRENCY = 2
RECONCILE_INTERVAL = 30  # `slipway server reconcile --loop`'s default (the API process has its own)
API_STOP_WAIT = 30  # the API process gives open requests 5 s and its agents 15 s to finish
READY_TIMEOUT = 90


@dataclass(frozen=True)
class PlatformInfo:
    """What `up` and `status` tell the user."""

    api_url: str
    router_url: str
    domain: str
    token_file: Path
    token: str | None
    logs_dir: Path


# ----------------------------------------------------------------------------- layout


def control_dir(settings: Settings) -> Path:
    """supervisord's configuration, socket and pid file, and the processes' logs."""
    return settings.data_dir / "control-plane"


def logs_dir(settings: Settings) -> Path:
    return control_dir(settings) / "logs"


def token_file(settings: Settings) -> Path:
    return settings.data_dir / "admin-token"


def supervisor_for(settings: Settings) -> Supervisor:
    digest = hashlib.sha256(str(settings.data_dir).encode()).hexdigest()[:8]
    return Supervisor(control_dir(settings), logs_dir(settings), f"slipway-{digest}")


def loopback_url(bind: str) -> str:
    """An http URL that reaches a bind address from this host (0.0.0.0 becomes 127.0.0.1)."""
    host, _, port = bind.rpartition(":")
    if host in ("", "0.0.0.0", "*"):
        host = "127.0.0.1"
    elif host in ("::", "[::]"):
        host = "[::1]"
    return f"http://{host}:{port}"


# ----------------------------------------------------------------------------- programs


def _bin(name: str) -> str:
    # The console scripts sit next to the interpreter of the virtualenv running us.
    return str(Path(sys.executable).parent / name)


def programs(settings: Settings) -> list[Program]:
    """Every process of the control plane, in start order."""
    env = process_env(settings)
    found: list[Program] = []
    redis = local_redis(settings)
    if redis:
        redis_dir = settings.data_dir / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        host, port = redis
        command = ["redis-server", *_redis_password_file(settings, redis_dir)]
        command += ["--bind", host, "--port", str(port), "--dir", str(redis_dir)]
        # An append-only file keeps queued deploys across `make down` / `make up`.
        command += ["--appendonly", "yes", "--daemonize", "no", "--protected-mode", "yes"]
        found.append(Program("redis", command, 10, env, stopwaitsecs=20))
    router = NginxRouter(settings)
    found.append(Program("router", router.command(foreground=True), 20, env, stopsignal="QUIT"))
    # The API, the dashboard and the platform's agents (reconciler, collector, backups, sleeper,
    # wake service) in one gevent process.
    api = [_bin("slipway"), "server", "api"]
    found.append(Program("api", api, 30, env, stopwaitsecs=API_STOP_WAIT))
    # Threads, not prefork children: a build mostly waits on Docker, and one process is a third
    # of the memory. Nothing relies on a child per task (no time limits, no signals in tasks).
    worker = [_bin("celery"), "-A", "slipway.tasks", "worker", "--loglevel", "INFO"]
    worker += ["--pool", "threads", "--concurrency", str(WORKER_CONCURRENCY)]
    worker += ["--hostname", "slipway@%h"]
    # A warm shutdown waits for running builds; past this, acks_late hands them out again.
    found.append(Program("worker", worker, 40, env, stopwaitsecs=30))
    return found


def _redis_password_file(settings: Settings, redis_dir: Path) -> list[str]:
    """A root-only config file with the broker URL's password, when it has one.

    On the command line the password would show in every host account's ``ps``.
    """
    password = urlsplit(settings.redis_url).password
    if not password:
        return []
    value = unquote(password)
    if any(c in value for c in '"\\\r\n'):
        raise HostError(
            "The password in SLIPWAY_REDIS_URL may not hold quotes, backslashes or line breaks."
        )
    path = redis_dir / "redis-password.conf"
    write_secret(path, f'requirepass "{value}"\n')
    return [str(path)]


# ----------------------------------------------------------------------------- preparing


def check_data_dir(settings: Settings) -> None:
    if not settings.data_dir.is_absolute():
        raise HostError(f"SLIPWAY_DATA_DIR must be an absolute path, not {settings.data_dir}.")


def prepare(settings: Settings) -> str | None:
    """Schema, admin token, volumes and router config; the admin token when one was made."""
    from slipway.adapters import build_adapters
    from slipway.db import make_engine, make_session_factory, session_scope, upgrade_database

    check_data_dir(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Apps' volumes, caches, sources and the database live here: no host account may look in.
    # Nothing but root needs to: tar runs as mop from a directory root opened for it.
    settings.data_dir.chmod(0o700)
    remove_caches_of_other_uids(settings)
    upgrade_database(settings)
    engine = make_engine(settings)
    try:
        with session_scope(make_session_factory(engine)) as session:
            token = _admin_token(session, settings)
    finally:
        engine.dispose()
    adapters = build_adapters(settings)
    try:
        adapters.runtime.ping()
    except RuntimeUnavailable as exc:
        raise HostError(preflight.docker_message()) from exc
    adapters.volumes.recover()
    # Spaces outlive a host restart: their pool and filesystems are mounted again before
    # anything starts a container that binds them.
    adapters.spaces.recover()
    NginxRouter(settings).ensure_config()
    return token


def _admin_token(session: Session, settings: Settings) -> str | None:
    from slipway.models import User
    from slipway.services.users import ADMIN_USERNAME, create_token, ensure_admin

    token = ensure_admin(session)
    path = token_file(settings)
    if token is None and not path.exists():
        # The file was lost: issue a new token rather than lock the admin out.
        admin = session.scalars(select(User).where(User.username == ADMIN_USERNAME)).one()
        token = create_token(session, admin, name="admin (re-issued)")
    if token is not None:
        write_secret(path, token + "\n")
    return token


def write_secret(path: Path, text: str) -> None:
    """Write a file only its owner can read (0600 from the start, never wider)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- commands


def up(settings: Settings) -> PlatformInfo:
    """Start the control plane, or bring a running one in line with its configuration.

    Raises :class:`HostError` naming the part, its address and the setting to change when a
    part cannot start; a first start that fails stops what it started.
    """
    check_app_uid(settings)  # before anything is made: apps' files must not be a host user's
    check_data_dir(settings)  # before anything is made under it
    supervisor = supervisor_for(settings)
    wanted = programs(settings)
    running = supervisor.pid()
    ours = preflight.process_tree(running) if running else set()
    preflight.check_addresses(settings, ours)
    prepare(settings)
    changed = supervisor.write(wanted)
    was_running = supervisor.is_running()
    if not was_running:
        supervisor.start()
    elif changed:
        supervisor.update()
    else:
        supervisor.ctl(["start", "all"], check=False)
    try:
        wait_until_ready(settings, supervisor)
    except HostError:
        if not was_running:
            supervisor.shutdown()
        raise
    return info(settings)


def down(settings: Settings) -> bool:
    """Stop every control-plane process; False when nothing was running. Apps keep running."""
    supervisor = supervisor_for(settings)
    was_running = supervisor.pid() is not None
    supervisor.shutdown()
    router = NginxRouter(settings)
    router.stop()  # in case one outlived its supervisor
    router.release_switch()
    return was_running


def status(settings: Settings) -> list[ProcessState]:
    supervisor = supervisor_for(settings)
    return supervisor.status() if supervisor.is_running() else []


def info(settings: Settings) -> PlatformInfo:
    path = token_file(settings)
    token = path.read_text().strip() if path.exists() else None
    return PlatformInfo(
        api_url=loopback_url(settings.api_bind),
        router_url=loopback_url(settings.router_bind),
        domain=settings.domain,
        token_file=path,
        token=token,
        logs_dir=logs_dir(settings),
    )


def wait_until_ready(settings: Settings, supervisor: Supervisor) -> None:
    """Wait (bounded) until every program runs, the API answers HTTP, the router accepts
    connections and the broker that answers is this platform's own redis."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        states = {state.name: state for state in supervisor.status()}
        given_up = [state for state in states.values() if state.state == "FATAL"]
        if given_up:
            raise HostError(" ".join(_did_not_start(settings, state) for state in given_up))
        waiting = _not_ready(settings, states)
        if not waiting:
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    listed = ", ".join(f"{p.name} {p.state}" for p in states.values())
    raise HostError(
        f"The platform did not come up within {READY_TIMEOUT} s: {'; '.join(waiting)} "
        f"({listed}). See the logs in {logs_dir(settings)}."
    )


def _not_ready(settings: Settings, states: dict[str, ProcessState]) -> list[str]:
    """What still keeps the platform from being up, in a few words each."""
    waiting = [f"{name} is {s.state}" for name, s in states.items() if s.state != "RUNNING"]
    if not _answers(loopback_url(settings.api_bind) + "/api/v1/apps"):
        waiting.append(f"the API does not answer on {settings.api_bind}")
    router = urlsplit(loopback_url(settings.router_bind))
    if not _accepts(router.hostname or "127.0.0.1", router.port or 80):
        waiting.append(f"the router does not accept connections on {settings.router_bind}")
    if local_redis(settings) and "redis" in states:
        ours = states["redis"].pid
        answering = preflight.redis_pid(settings)
        if answering is None or answering != ours:
            who = "no redis" if answering is None else f"another redis (pid {answering})"
            waiting.append(f"{who} answers at {preflight.shown_url(settings.redis_url)}")
    return waiting


def _did_not_start(settings: Settings, state: ProcessState) -> str:
    """One sentence for a program supervisord gave up on, with the last line of its log."""
    log = logs_dir(settings) / f"{state.name}.log"
    last = ""
    if log.is_file():
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        last = f' Its log ({log}) ends: "{lines[-1].strip()[:300]}".' if lines else ""
    part = next((p for p in preflight.parts(settings) if p.program == state.name), None)
    if part is not None:
        return f"{part.title} could not start on {part.address} ({state.state}).{last} " + (
            f"Set {part.setting} {part.advice} if the address is taken."
        )
    return f"The {state.name} process did not start ({state.state}).{last}"


def _answers(url: str) -> bool:
    with requests.Session() as http:
        http.trust_env = False  # loopback: never through a proxy from the environment
        try:
            # Any HTTP answer (401 without a token) means the API process is serving.
            return http.get(url, timeout=2).status_code < 500
        except requests.RequestException:
            return False


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False
