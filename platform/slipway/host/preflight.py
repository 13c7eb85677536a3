"""Checks before and after `slipway server up`: every part it needs can start, and did.

A part that cannot bind its address (taken by another program, or by another platform's redis)
must stop `up` with one sentence that names the part, the address and the setting to change,
never leave a platform that only looks up. Its worker would otherwise talk to someone else's
redis.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import redis

from slipway.config import Settings
from slipway.host.supervisor import HostError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
DEFAULT_DOCKER = "unix:///var/run/docker.sock"


@dataclass(frozen=True)
class Part:
    """A control-plane process that listens on an address this host must give it."""

    program: str  # the supervisord program
    title: str  # how a message names it
    host: str
    port: int
    setting: str  # what to change when the address is taken
    advice: str

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def split_bind(bind: str, default_port: int) -> tuple[str, int]:
    """``"127.0.0.1:7000"`` → ("127.0.0.1", 7000); a wildcard or empty host is 0.0.0.0."""
    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    if host in ("", "*"):
        host = "0.0.0.0"
    return host, int(port) if port.isdigit() else default_port


def local_redis(settings: Settings) -> tuple[str, int] | None:
    """(host, port) when the broker URL points at this host, so we run redis-server ourselves."""
    url = urlsplit(settings.redis_url)
    if url.scheme != "redis" or url.hostname not in LOCAL_HOSTS:
        return None
    return url.hostname or "127.0.0.1", url.port or 6379


def shown_url(url: str) -> str:
    """A broker URL fit to print: its password, if any, replaced by ``***``."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()


def parts(settings: Settings) -> list[Part]:
    """The addresses `up` will bind: the embedded redis (when local), the API, the router."""
    found = []
    redis_address = local_redis(settings)
    if redis_address:
        host, port = redis_address
        advice = "to a free port"
        found.append(Part("redis", "redis", host, port, "SLIPWAY_REDIS_URL", advice))
    host, port = split_bind(settings.api_bind, 7000)
    advice = "to a free address"
    found.append(Part("api", "the API", host, port, "SLIPWAY_API_BIND", advice))
    host, port = split_bind(settings.router_bind, 80)
    found.append(Part("router", "the router (nginx)", host, port, "SLIPWAY_ROUTER_BIND", advice))
    # The wake service runs inside the API's process (see host.control.programs).
    host, port = split_bind(settings.wake_bind, 7002)
    found.append(Part("api", "the wake service", host, port, "SLIPWAY_WAKE_BIND", advice))
    return found


def bind_problem(host: str, port: int) -> str | None:
    """Why nothing could listen on (host, port) now, in a few words; None when it could."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror:
        return f"{host} is not a name or address of this host"
    with socket.socket(family, kind, proto) as probe:
        # As the servers do: an address left in TIME_WAIT is free, a listening one is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            return _reason(exc)
    return None


def _reason(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return "the address is in use"
    if exc.errno == errno.EACCES:
        return "permission denied (a port below 1024 needs root)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "the address is not one of this host's"
    return exc.strerror or str(exc)


def problem_message(part: Part, reason: str) -> str:
    return (
        f"{part.title} could not start on {part.address}: {reason}. "
        f"Set {part.setting} {part.advice}."
    )


def check_addresses(settings: Settings, ours: Collection[int] = ()) -> None:
    """:class:`HostError` naming every part whose address is not free. An address held only by
    processes in ``ours`` (this platform's running control plane) counts as free."""
    problems = []
    for part in parts(settings):
        reason = bind_problem(part.host, part.port)
        if reason is None:
            continue
        holders = listening_pids(part.port)
        if holders and ours and holders <= set(ours):
            continue
        problems.append(problem_message(part, reason))
    if problems:
        raise HostError(" ".join(problems))


# ----------------------------------------------------------------------------- who listens


PROC = Path("/proc")
TCP_LISTEN = "0A"


def listening_pids(port: int, proc: Path = PROC) -> set[int]:
    """The processes holding a TCP socket that listens on ``port`` (any address)."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            rows = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == TCP_LISTEN and int(local.rpartition(":")[2], 16) == port:
                inodes.add(f"socket:[{inode}]")
    return {pid for pid, target in _socket_fds(proc) if target in inodes} if inodes else set()


def _socket_fds(proc: Path) -> list[tuple[int, str]]:
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                found.append((int(entry.name), os.readlink(fd)))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def process_tree(root: int, proc: Path = PROC) -> set[int]:
    """``root`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        parent = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in tree:
            tree.add(pid)
            todo += children.get(pid, [])
    return tree


def docker_address() -> str:
    """Where the Docker SDK looks for the engine (it reads DOCKER_HOST itself)."""
    return os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER


def docker_message() -> str:
    return (
        f"Docker could not be reached at {docker_address()}: the engine does not answer. "
        "Start dockerd (`make docker`), or set DOCKER_HOST to the engine's socket."
    )


def redis_pid(settings: Settings) -> int | None:
    """The pid of the redis-server answering the broker URL, or None when none answers."""
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        return int(client.info("server")["process_id"])
    except (redis.RedisError, OSError, KeyError, ValueError):
        return None
    finally:
        client.close()
