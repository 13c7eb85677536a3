"""What the platform needs from a container engine, and nothing more.

Every container Slipway starts follows the same safe defaults (Emergence's OCI defaults and the
Modulus standard): user ``mop``, read-only root filesystem, all capabilities dropped,
``no-new-privileges``, memory and pids limits, and only the mounted volumes writable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from slipway.appuser import MOP_USER as MOP_USER  # mop's "uid:gid" (SLIPWAY_APP_UID)

# Labels every Slipway container carries, so the reconciler can find its own.
LABEL_MANAGED = "io.slipway.managed"
LABEL_APP = "io.slipway.app"
LABEL_RELEASE = "io.slipway.release"
LABEL_INSTANCE = "io.slipway.instance"
LABEL_PROCESS = "io.slipway.process"
LABEL_KIND = "io.slipway.kind"  # "build", "instance" or "run" (one-off)


class RuntimeUnavailable(Exception):
    """The container engine cannot be reached (for example dockerd is not running)."""


class ContainerError(Exception):
    """The engine refused or failed an operation on a container; the message says why."""


class ImageMissing(ContainerError):
    """The image a container needs has not been built on this host."""


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class Limits:
    memory: int = 512 * 1024**2  # bytes; swap is held to the same figure
    pids: int = 512
    cpus: float | None = None


@dataclass
class BuildSpec:
    """One run of an image's ``build`` executable."""

    image: str
    name: str
    mounts: list[Mount]
    env: dict[str, str]
    limits: Limits
    timeout: float  # wall-clock seconds; the container is killed past it
    labels: dict[str, str] = field(default_factory=dict)
    command: list[str] = field(default_factory=lambda: ["build"])
    network: bool = True  # builds fetch packages


@dataclass(frozen=True)
class BuildResult:
    exit_code: int | None  # None when the container was killed for the time limit
    timed_out: bool
    duration: float

    @property
    def ok(self) -> bool:
        return not self.timed_out and self.exit_code == 0


@dataclass(frozen=True)
class TerminalSize:
    rows: int
    cols: int


class Terminal(Protocol):
    """The terminal (TTY) of a running one-off container, as its user's keyboard and screen."""

    def read(self) -> bytes:
        """The next output as it comes; ``b""`` once the container's side has closed."""

    def write(self, data: bytes) -> None:
        """Type ``data``; Ctrl-C (0x03) makes the container's terminal send SIGINT."""

    def resize(self, rows: int, cols: int) -> None:
        """Change the terminal's size (the foreground program gets SIGWINCH)."""


@dataclass
class InstanceSpec:
    """A long-running container: the run image's supervisord starting ``start``."""

    image: str
    name: str
    mounts: list[Mount]
    env: dict[str, str]
    limits: Limits
    port: int  # the PORT inside the container; published on 127.0.0.1 at a free host port
    labels: dict[str, str] = field(default_factory=dict)
    command: list[str] | None = None  # None: the image's default (supervisord)


@dataclass(frozen=True)
class RunningInstance:
    container_id: str
    name: str
    host_port: int


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    output: str


@dataclass(frozen=True)
class ContainerInfo:
    container_id: str
    name: str
    status: str  # docker's word: created, running, exited, ...
    labels: dict[str, str]
    host_port: int | None


@dataclass(frozen=True)
class ContainerEvent:
    action: str  # "die", "oom", "start", "stop", "kill", ...
    container_id: str
    labels: dict[str, str]
    time: float
    exit_code: int | None = None


class ContainerRuntime(Protocol):
    def ping(self) -> None:
        """Raise :class:`RuntimeUnavailable` with one clear sentence when the engine is down."""

    def run_build(self, spec: BuildSpec, on_line: Callable[[str], None]) -> BuildResult:
        """Run a build container to the end, streaming its output lines; always remove it."""

    def run_terminal(
        self, spec: BuildSpec, size: TerminalSize, attach: Callable[[Terminal], None]
    ) -> BuildResult:
        """Run ``spec`` with a terminal: the build's safe defaults and time limit, plus a TTY.

        ``attach`` gets the terminal once the container runs and returns when it is done with
        it (the output ended, or its user went away); a container still running then is
        killed. The container is removed whatever happens."""

    def start_instance(self, spec: InstanceSpec) -> RunningInstance:
        """Create and start a container with ``spec.port`` published on 127.0.0.1."""

    def wait_for_port(self, host_port: int, timeout: float, health_path: str | None = None) -> bool:
        """True once 127.0.0.1:host_port accepts connections (and health_path answers 2xx)."""

    def exec(self, container_id: str, command: list[str], user: str | None = None) -> ExecResult:
        """Run a command inside a running container (for ``supervisorctl``), as ``user`` or, by
        default, as the user the container runs as (mop, with the uid it was started with)."""

    def stop(self, container_id: str, timeout: float = 10) -> None:
        """Stop (SIGTERM, then SIGKILL after timeout) and remove; a missing container is fine."""

    def list(self, labels: dict[str, str] | None = None) -> list[ContainerInfo]:
        """Every Slipway container (running or not) carrying all the given labels."""

    def events(
        self, since: float | None = None, until: float | None = None
    ) -> Iterator[ContainerEvent]:
        """Container events for Slipway containers; blocks for new ones when until is None."""

    def update_limits(self, container_id: str, limits: Limits) -> None:
        """Change a running container's memory limit in place (no restart)."""

    def oom_kills(self, container_id: str) -> int | None:
        """How many processes the kernel's OOM killer has killed in the running container, any
        process at all (its memory cgroup's counter); None when it is not running."""

    def logs(self, container_id: str, tail: int = 100) -> str:
        """The container's own stdout/stderr (supervisord's), for diagnosing a start failure."""
