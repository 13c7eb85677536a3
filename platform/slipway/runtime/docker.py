"""The container runtime on the local Docker engine, through the Docker SDK.

Every container gets the same safe defaults: user mop, a read-only root filesystem, no
capabilities, ``no-new-privileges``, memory (swap held to the same figure) and pids limits, the
``io.slipway.managed=1`` label, and the app's name as its hostname. The image's entrypoint (tini,
PID 1) is always kept.
"""

from __future__ import annotations

import builtins
import contextlib
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.types
import requests

from slipway.runtime import kernel
from slipway.runtime.base import (
    LABEL_APP,
    LABEL_KIND,
    LABEL_MANAGED,
    MOP_USER,
    BuildResult,
    BuildSpec,
    ContainerError,
    ContainerEvent,
    ContainerInfo,
    ExecResult,
    ImageMissing,
    InstanceSpec,
    Limits,
    Mount,
    RunningInstance,
    RuntimeUnavailable,
    Terminal,
    TerminalSize,
)

BUILD_TMPFS = {"/tmp": "size=512m,mode=1777"}
# Apps are told TMPDIR=/mnt/tmp, but some libraries insist on /tmp; a small tmpfs (it counts
# against the memory limit) keeps them working without a writable root filesystem.
INSTANCE_TMPFS = {"/tmp": "size=64m,mode=1777"}
LABEL_PREFIX = "io.slipway."
POLL_INTERVAL = 0.05  # the start of a deploy waits on this probe: keep it short
PROBE_REQUEST = b"HEAD / HTTP/1.0\r\nHost: localhost\r\nUser-Agent: slipway-probe\r\n\r\n"
PROBE_SILENCE = 0.1  # seconds a listening server may stay silent before it counts as up
LOG_DRAIN_TIMEOUT = 10.0  # seconds to let the log reader finish after the container ends
EXIT_GRACE = 2.0  # seconds between a terminal's last output and its container's exit status
TERMINAL_CHUNK = 16 * 1024
HOSTNAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


# -- error mapping --------------------------------------------------------------------------


def _unavailable(exc: Exception) -> RuntimeUnavailable:
    return RuntimeUnavailable(f"The Docker engine is not reachable: {exc}. Is dockerd running?")


@contextlib.contextmanager
def _docker_errors(what: str, image: str | None = None) -> Iterator[None]:
    """Turn the SDK's exceptions into the runtime's, each with one clear sentence."""
    try:
        yield
    except docker.errors.ImageNotFound as exc:
        raise ImageMissing(
            f"The image {image} is not on this host: run `slipway server images build`."
        ) from exc
    except docker.errors.NotFound as exc:
        raise ContainerError(f"Cannot {what}: {exc.explanation}.") from exc
    except docker.errors.APIError as exc:
        raise ContainerError(f"Docker refused to {what}: {exc.explanation}.") from exc
    except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
        raise _unavailable(exc) from exc


# -- the pieces of a container --------------------------------------------------------------


def _mounts(mounts: list[Mount]) -> list[docker.types.Mount]:
    return [
        docker.types.Mount(m.target, str(m.source), type="bind", read_only=m.read_only)
        for m in mounts
    ]


def _limits(limits: Limits) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "mem_limit": limits.memory,
        "memswap_limit": limits.memory,  # no swap beyond the memory limit
        "pids_limit": limits.pids,
    }
    if limits.cpus:
        kwargs["nano_cpus"] = int(limits.cpus * 1e9)
    return kwargs


def _safe_defaults(
    image: str, name: str, env: dict[str, str], mounts: list[Mount], limits: Limits
) -> dict[str, Any]:
    return {
        "image": image,
        "name": name,
        "user": MOP_USER,
        "environment": env,
        "mounts": _mounts(mounts),
        "read_only": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        **_limits(limits),
    }


def _hostname(labels: dict[str, str]) -> dict[str, str]:
    """The app's name as the container's hostname (Emergence's default), not the container id.

    App names are valid host names already; anything else keeps Docker's default.
    """
    app = labels.get(LABEL_APP, "")
    return {"hostname": app} if HOSTNAME_RE.match(app) else {}


def _labels(kind: str, labels: dict[str, str], platform: str = "1") -> dict[str, str]:
    return {LABEL_KIND: kind, **labels, LABEL_MANAGED: platform}


def _label_filters(labels: dict[str, str] | None, platform: str = "1") -> list[str]:
    # The managed label's value names the platform: two platforms on one engine (a test
    # platform next to `make up`) never see, reconcile or remove each other's containers.
    wanted = {**(labels or {}), LABEL_MANAGED: platform}
    return [f"{key}={value}" for key, value in sorted(wanted.items())]


def _stream_lines(chunks: Iterator[bytes], on_line: Callable[[str], None]) -> None:
    """Feed complete lines to ``on_line`` as chunks arrive; the last partial line at the end."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            on_line(line.decode("utf-8", errors="replace").rstrip("\r"))
    if pending:
        on_line(pending.decode("utf-8", errors="replace").rstrip("\r"))


def _host_port(ports: builtins.list[dict[str, Any]]) -> int | None:
    """The first public port of a container, from the list API's ``Ports``."""
    for port in ports:
        if port.get("PublicPort"):
            return int(port["PublicPort"])
    return None


def _event(raw: dict[str, Any]) -> ContainerEvent:
    attributes = raw.get("Actor", {}).get("Attributes", {})
    exit_code = attributes.get("exitCode")
    return ContainerEvent(
        # Exec events read "exec_start: supervisorctl status"; keep the verb only.
        action=raw.get("Action", raw.get("status", "")).split(":", 1)[0],
        container_id=raw.get("Actor", {}).get("ID", raw.get("id", "")),
        labels={k: v for k, v in attributes.items() if k.startswith(LABEL_PREFIX)},
        time=raw["timeNano"] / 1e9 if "timeNano" in raw else float(raw.get("time", 0)),
        exit_code=int(exit_code) if exit_code is not None else None,
    )


def _timestamp(value: float | None) -> str | None:
    # The engine reads "seconds.nanoseconds"; a float's repr could be in exponent form.
    return None if value is None else f"{value:.9f}"


# Every app and build container joins this one bridge network, shared by all platforms on the
# engine. Inter-container traffic is off on it: a container reaches the internet and published
# ports through the host, never another tenant's container directly.
APP_NETWORK = "slipway-apps"
APP_NETWORK_OPTIONS = {"com.docker.network.bridge.enable_icc": "false"}


# -- the runtime ----------------------------------------------------------------------------


class DockerRuntime:
    """:class:`~slipway.runtime.base.ContainerRuntime` on the local engine (``DOCKER_HOST``)."""

    def __init__(
        self,
        client_factory: Callable[[], docker.DockerClient] = docker.from_env,
        platform: str = "1",
    ):
        self._client_factory = client_factory
        self._platform = platform
        self._client: docker.DockerClient | None = None
        self._lock = threading.Lock()
        self._counter_files: dict[str, Path] = {}  # container id -> its oom_kill counter
        self._network_ready = False

    @property
    def client(self) -> docker.DockerClient:
        """The SDK client, connected on first use."""
        with self._lock:
            if self._client is None:
                try:
                    self._client = self._client_factory()
                except (requests.exceptions.ConnectionError, docker.errors.DockerException) as e:
                    raise _unavailable(e) from e
            return self._client

    def _engine_name(self, name: str) -> str:
        # Container names are global on the engine: every platform but the default one (a test
        # platform next to `make up`) gets its own suffix, so deploy 1 of one platform never
        # meets deploy 1 of another. Callers keep using the plain name.
        return name if self._platform == "1" else f"{name}.{self._platform}"

    def _plain_name(self, engine_name: str) -> str:
        return engine_name.removesuffix(f".{self._platform}")

    def app_network(self) -> str:
        """The name of :data:`APP_NETWORK`, created on first use (no container-to-container)."""
        if self._network_ready:
            return APP_NETWORK
        with _docker_errors(f"create the network {APP_NETWORK}"):
            try:
                network = self.client.networks.get(APP_NETWORK)
            except docker.errors.NotFound:
                try:
                    network = self.client.networks.create(
                        APP_NETWORK, driver="bridge", options=APP_NETWORK_OPTIONS
                    )
                except docker.errors.APIError:  # another process made it meanwhile
                    network = self.client.networks.get(APP_NETWORK)
        options = network.attrs.get("Options") or {}
        if options.get("com.docker.network.bridge.enable_icc") != "false":
            raise ContainerError(
                f"The Docker network {APP_NETWORK} lets containers reach each other; remove it "
                f"(docker network rm {APP_NETWORK}) and Slipway makes it again without that."
            )
        self._network_ready = True
        return APP_NETWORK

    def ping(self) -> None:
        with _docker_errors("reach the engine"):
            self.client.ping()

    # -- builds -----------------------------------------------------------------------------

    def run_build(self, spec: BuildSpec, on_line: Callable[[str], None]) -> BuildResult:
        container = self._create_once(spec, "build", "create build container")
        started = time.monotonic()
        try:
            with _docker_errors(f"start build container {spec.name}"):
                container.start()
            reader = threading.Thread(
                target=self._pump_logs, args=(container, on_line), daemon=True
            )
            reader.start()
            exit_code, timed_out = self._wait(container, spec.timeout)
            reader.join(LOG_DRAIN_TIMEOUT)
        finally:
            with contextlib.suppress(docker.errors.DockerException):
                container.remove(force=True)
        return BuildResult(exit_code, timed_out, time.monotonic() - started)

    def _pump_logs(self, container: Any, on_line: Callable[[str], None]) -> None:
        # follow=True returns everything since the start, then ends when the container stops.
        with contextlib.suppress(docker.errors.DockerException, requests.RequestException):
            _stream_lines(container.logs(stream=True, follow=True), on_line)

    def _wait(self, container: Any, timeout: float) -> tuple[int | None, bool]:
        """Wait for the exit code; past ``timeout`` seconds kill the container instead."""
        deadline = time.monotonic() + timeout
        try:
            status = container.wait(timeout=max(timeout, 0.001))
            return int(status["StatusCode"]), False
        except requests.exceptions.RequestException as exc:
            # A read timeout (some urllib3 versions wrap it as ConnectionError) means time is
            # up; any other failure before the deadline means the engine went away.
            if time.monotonic() < deadline - 1:
                raise _unavailable(exc) from exc
            with contextlib.suppress(docker.errors.DockerException):
                container.kill()
            with contextlib.suppress(docker.errors.DockerException, requests.RequestException):
                container.wait(timeout=30)
            return None, True

    def _create_once(self, spec: BuildSpec, kind: str, action: str, **extra: Any) -> Any:
        """A container that runs ``spec`` once (a build or a one-off), with every safe default;
        a leftover of the same name (a crash's) is dropped first."""
        self._remove_leftover(self._engine_name(spec.name))
        with _docker_errors(f"{action} {spec.name}", spec.image):
            return self.client.containers.create(
                command=spec.command,
                labels=_labels(kind, spec.labels, self._platform),
                tmpfs=BUILD_TMPFS,
                **extra,
                **_hostname(spec.labels),
                **({"network": self.app_network()} if spec.network else {"network_mode": "none"}),
                **_safe_defaults(
                    spec.image, self._engine_name(spec.name), spec.env, spec.mounts, spec.limits
                ),
            )

    def _remove_leftover(self, name: str) -> None:
        """A build container of the same name can only be a crash's leftover: drop it."""
        with _docker_errors(f"remove leftover container {name}"):
            with contextlib.suppress(docker.errors.NotFound):
                self.client.containers.get(name).remove(force=True)

    # -- one-off runs with a terminal -------------------------------------------------------

    def run_terminal(
        self, spec: BuildSpec, size: TerminalSize, attach: Callable[[Terminal], None]
    ) -> BuildResult:
        container = self._create_once(spec, "run", "create container", tty=True, stdin_open=True)
        started = time.monotonic()
        try:
            with _docker_errors(f"attach to container {spec.name}"):
                # Attached before the start, so not a byte of the first output is lost.
                terminal = _AttachedTerminal(container, container.attach_socket(params=ATTACH))
            try:
                with _docker_errors(f"start container {spec.name}"):
                    container.start()
                terminal.resize(size.rows, size.cols)
                exit_code, timed_out = self._attend(container, terminal, spec.timeout, attach)
            finally:
                terminal.close()
        finally:
            with contextlib.suppress(docker.errors.DockerException, requests.RequestException):
                container.remove(force=True)
        return BuildResult(exit_code, timed_out, time.monotonic() - started)

    def _attend(
        self,
        container: Any,
        terminal: _AttachedTerminal,
        timeout: float,
        attach: Callable[[Terminal], None],
    ) -> tuple[int | None, bool]:
        """Hand the terminal to ``attach`` while a waiter holds the time limit; the status."""
        outcome: list[tuple[int | None, bool] | BaseException] = []

        def wait() -> None:
            try:
                outcome.append(self._wait(container, timeout))
            except BaseException as exc:  # handed to the calling thread
                outcome.append(exc)

        waiter = threading.Thread(target=wait, name=f"wait-{container.id[:12]}", daemon=True)
        waiter.start()
        try:
            attach(terminal)
        finally:
            waiter.join(EXIT_GRACE)
            if waiter.is_alive():  # its user went away, and the command still runs
                with contextlib.suppress(docker.errors.DockerException, requests.RequestException):
                    container.kill()
                waiter.join(30)
        if not outcome:
            raise ContainerError("The engine did not say how the one-off container ended.")
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        return outcome[0]

    # -- instances --------------------------------------------------------------------------

    def start_instance(self, spec: InstanceSpec) -> RunningInstance:
        port_key = f"{spec.port}/tcp"
        with _docker_errors(f"start instance {spec.name}", spec.image):
            container = self.client.containers.create(
                command=spec.command,
                labels=_labels("instance", spec.labels, self._platform),
                tmpfs=INSTANCE_TMPFS,
                **_hostname(spec.labels),
                ports={port_key: ("127.0.0.1", None)},  # a free host port, loopback only
                network=self.app_network(),
                restart_policy={"Name": "unless-stopped"},
                **_safe_defaults(
                    spec.image, self._engine_name(spec.name), spec.env, spec.mounts, spec.limits
                ),
            )
            try:
                container.start()
                container.reload()
            except docker.errors.APIError:
                container.remove(force=True)  # e.g. a bad mount: leave nothing behind
                raise
        bindings = (container.attrs["NetworkSettings"]["Ports"] or {}).get(port_key) or []
        if not bindings:
            tail = self.logs(container.id, tail=20)
            self.stop(container.id, timeout=1)
            raise ContainerError(
                f"Instance {spec.name} exited right after starting; its last output:\n{tail}"
            )
        return RunningInstance(container.id, spec.name, int(bindings[0]["HostPort"]))

    def wait_for_port(self, host_port: int, timeout: float, health_path: str | None = None) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _answers(host_port, health_path):
                return True
            time.sleep(POLL_INTERVAL)
        return False

    # -- control ----------------------------------------------------------------------------

    def exec(self, container_id: str, command: list[str], user: str | None = None) -> ExecResult:
        # Docker runs an exec as the container's own user when none is given: an instance
        # started before SLIPWAY_APP_UID changed keeps answering supervisorctl as its old mop.
        with _docker_errors(f"run {command[0]} in {container_id[:12]}"):
            container = self.client.containers.get(container_id)
            exit_code, (out, err) = container.exec_run(command, user=user or "", demux=True)
        output = (out or b"") + (err or b"")
        return ExecResult(int(exit_code), output.decode("utf-8", errors="replace"))

    def oom_kills(self, container_id: str) -> int | None:
        known = self._counter_files.get(container_id)
        if known is not None:
            count = kernel.read_oom_kill(known)
            if count is not None:
                return count
            del self._counter_files[container_id]  # the container stopped (or restarted)
        for path in kernel.counter_files(container_id) + self._counter_files_by_pid(container_id):
            count = kernel.read_oom_kill(path)
            if count is not None:
                self._counter_files[container_id] = path
                return count
        return None

    def _counter_files_by_pid(self, container_id: str) -> builtins.list[Path]:
        """Ask the engine for the container's first process and read its cgroup (for an engine
        with its own cgroup parent); nothing when the container is gone or not running."""
        try:
            state = self.client.api.inspect_container(container_id)["State"]
        except docker.errors.DockerException:
            return []
        pid = int(state.get("Pid") or 0)
        return kernel.counter_files_of_pid(pid) if pid > 0 else []

    def update_limits(self, container_id: str, limits: Limits) -> None:
        # Swap is held to the memory figure, as at creation: both change in one call.
        with _docker_errors(f"change the limits of {container_id[:12]}"):
            self.client.containers.get(container_id).update(
                mem_limit=limits.memory, memswap_limit=limits.memory
            )

    def stop(self, container_id: str, timeout: float = 10) -> None:
        with _docker_errors(f"stop {container_id[:12]}"):
            try:
                container = self.client.containers.get(container_id)
                container.stop(timeout=max(1, int(timeout)))
                container.remove(force=True)
            except docker.errors.NotFound:
                pass

    def list(self, labels: dict[str, str] | None = None) -> builtins.list[ContainerInfo]:
        # The low-level list call: one request, and no race with a container removed meanwhile.
        with _docker_errors("list containers"):
            wanted = _label_filters(labels, self._platform)
            rows = self.client.api.containers(all=True, filters={"label": wanted})
        return [
            ContainerInfo(
                container_id=row["Id"],
                name=self._plain_name((row.get("Names") or ["/"])[0].lstrip("/")),
                status=row.get("State", ""),
                labels=row.get("Labels") or {},
                host_port=_host_port(row.get("Ports") or []),
            )
            for row in rows
        ]

    def events(
        self, since: float | None = None, until: float | None = None
    ) -> Iterator[ContainerEvent]:
        filters = {"type": "container", "label": _label_filters(None, self._platform)}
        with _docker_errors("read events"):
            stream = self.client.events(
                since=_timestamp(since), until=_timestamp(until), decode=True, filters=filters
            )
        try:
            with _docker_errors("read events"):
                for raw in stream:
                    yield _event(raw)
        finally:
            stream.close()

    def logs(self, container_id: str, tail: int = 100) -> str:
        with _docker_errors(f"read the logs of {container_id[:12]}"):
            data = self.client.containers.get(container_id).logs(tail=tail)
        return bytes(data).decode("utf-8", errors="replace")


ATTACH = {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}


class _AttachedTerminal:
    """:class:`~slipway.runtime.base.Terminal` over the engine's attach stream of a TTY container.

    With a TTY the stream is the terminal's raw bytes both ways (no multiplexing headers).
    """

    def __init__(self, container: Any, stream: Any) -> None:
        self._container = container
        self._stream = stream  # keeps the HTTP response (and so the connection) alive
        self._socket: socket.socket = getattr(stream, "_sock", stream)

    def read(self) -> bytes:
        try:
            return self._socket.recv(TERMINAL_CHUNK)
        except OSError:  # closed under us: the run is over
            return b""

    def write(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            self._socket.sendall(data)

    def resize(self, rows: int, cols: int) -> None:
        # A container that just ended cannot be resized; that is no error worth raising.
        with contextlib.suppress(docker.errors.DockerException, requests.RequestException):
            self._container.resize(height=rows, width=cols)

    def close(self) -> None:
        """Close the stream; a thread blocked in :meth:`read` gets ``b""``."""
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._socket.close()
        response = getattr(self._stream, "_response", None)
        if response is not None:
            with contextlib.suppress(Exception):
                response.close()


def _answers(host_port: int, health_path: str | None) -> bool:
    """One probe of 127.0.0.1:host_port (and of health_path over HTTP when given)."""
    if health_path is not None:
        try:
            reply = requests.get(
                f"http://127.0.0.1:{host_port}{health_path}", timeout=2, allow_redirects=False
            )
        except requests.RequestException:
            return False
        return 200 <= reply.status_code < 300
    try:
        conn = socket.create_connection(("127.0.0.1", host_port), timeout=1)
    except OSError:
        return False
    with conn:
        # Docker's proxy accepts on the published port even when nothing listens inside,
        # then closes at once (well under a millisecond on loopback). A request tells the two
        # apart without waiting: a live web server answers it (any status will do), the proxy
        # just closes. One that keeps silent for PROBE_SILENCE seconds is listening too.
        conn.settimeout(PROBE_SILENCE)
        try:
            conn.sendall(PROBE_REQUEST)
            return conn.recv(1) != b""
        except TimeoutError:
            return True
        except OSError:
            return False
