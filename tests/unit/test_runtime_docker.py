"""Fast tests of the Docker runtime with a fake SDK client: what it asks the engine for."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from slipway.runtime.base import (
    LABEL_APP,
    LABEL_KIND,
    LABEL_MANAGED,
    BuildSpec,
    ImageMissing,
    InstanceSpec,
    Limits,
    Mount,
    RuntimeUnavailable,
)
from slipway.runtime.docker import APP_NETWORK, DockerRuntime, _answers, _event, _stream_lines
from slipway.services.layout import MOP_GID, MOP_UID


class FakeContainer:
    id = "c0ffee" * 10

    def __init__(self, chunks: list[bytes], exit_code: int = 0) -> None:
        self.chunks = chunks
        self.exit_code = exit_code
        self.removed = False
        self.attrs = {"NetworkSettings": {"Ports": {"5000/tcp": [{"HostPort": "49999"}]}}}

    def start(self) -> None:
        pass

    def reload(self) -> None:
        pass

    def logs(self, stream: bool = False, follow: bool = False, tail: Any = None) -> Any:
        return iter(self.chunks) if stream else b"".join(self.chunks)

    def wait(self, timeout: float) -> dict[str, int]:
        return {"StatusCode": self.exit_code}

    def remove(self, force: bool = False) -> None:
        self.removed = True


class FakeContainers:
    def __init__(self, container: FakeContainer) -> None:
        self.container = container
        self.created: list[dict[str, Any]] = []

    def create(self, **kwargs: Any) -> FakeContainer:
        if kwargs["image"] == "missing:latest":
            raise docker.errors.ImageNotFound("No such image: missing:latest")
        self.created.append(kwargs)
        return self.container

    def get(self, name: str) -> FakeContainer:
        raise docker.errors.NotFound("No such container")


class FakeNetwork:
    def __init__(self, options: dict[str, str]) -> None:
        self.attrs = {"Options": options}


class FakeNetworks:
    """The engine's networks: none at first; ``create`` records what it was asked for."""

    def __init__(self) -> None:
        self.made: dict[str, FakeNetwork] = {}

    def get(self, name: str) -> FakeNetwork:
        if name not in self.made:
            raise docker.errors.NotFound("No such network")
        return self.made[name]

    def create(self, name: str, driver: str, options: dict[str, str]) -> FakeNetwork:
        self.made[name] = FakeNetwork(options)
        return self.made[name]


class FakeClient:
    def __init__(self, container: FakeContainer) -> None:
        self.containers = FakeContainers(container)
        self.networks = FakeNetworks()


def runtime_with(container: FakeContainer) -> tuple[DockerRuntime, FakeClient]:
    client = FakeClient(container)
    return DockerRuntime(client_factory=lambda: client), client  # type: ignore[arg-type,return-value]


def build_spec(**changes: Any) -> BuildSpec:
    spec = BuildSpec(
        image="slipway/build-node:latest",
        name="build-hello-1",
        mounts=[
            Mount(Path("/v/in"), "/mnt/input", read_only=True),
            Mount(Path("/v/out"), "/mnt/app"),
        ],
        env={"INPUT": "/mnt/input"},
        limits=Limits(memory=256 * 1024**2, pids=100, cpus=1.5),
        timeout=60,
        labels={LABEL_APP: "hello"},
    )
    for key, value in changes.items():
        setattr(spec, key, value)
    return spec


def test_build_containers_get_the_safe_defaults() -> None:
    container = FakeContainer([b"-----> one\n-----> t", b"wo\nlast"], exit_code=3)
    runtime, client = runtime_with(container)
    lines: list[str] = []

    result = runtime.run_build(build_spec(), lines.append)

    [kwargs] = client.containers.created
    assert kwargs["user"] == f"{MOP_UID}:{MOP_GID}"
    assert kwargs["read_only"] is True
    assert kwargs["cap_drop"] == ["ALL"]
    assert kwargs["security_opt"] == ["no-new-privileges"]
    assert kwargs["mem_limit"] == kwargs["memswap_limit"] == 256 * 1024**2
    assert kwargs["pids_limit"] == 100
    assert kwargs["nano_cpus"] == 1_500_000_000
    assert kwargs["labels"] == {LABEL_MANAGED: "1", LABEL_KIND: "build", LABEL_APP: "hello"}
    assert kwargs["command"] == ["build"]
    assert "entrypoint" not in kwargs  # tini stays PID 1
    assert kwargs["tmpfs"] == {"/tmp": "size=512m,mode=1777"}
    assert kwargs["network"] == APP_NETWORK
    mounts = kwargs["mounts"]
    assert [(m["Source"], m["Target"], m["ReadOnly"]) for m in mounts] == [
        ("/v/in", "/mnt/input", True),
        ("/v/out", "/mnt/app", False),
    ]
    assert lines == ["-----> one", "-----> two", "last"]
    assert (result.exit_code, result.timed_out, result.ok) == (3, False, False)
    assert container.removed


def test_another_platform_names_and_labels_its_containers_apart() -> None:
    client = FakeClient(FakeContainer([b"ok\n"]))
    runtime = DockerRuntime(client_factory=lambda: client, platform="abc123")  # type: ignore[arg-type,return-value]

    runtime.run_build(build_spec(), lambda _line: None)

    [kwargs] = client.containers.created
    assert kwargs["name"] == "build-hello-1.abc123"
    assert kwargs["labels"][LABEL_MANAGED] == "abc123"


def test_a_build_without_network() -> None:
    runtime, client = runtime_with(FakeContainer([]))
    runtime.run_build(build_spec(network=False), lambda line: None)
    assert client.containers.created[0]["network_mode"] == "none"


def test_instances_publish_on_loopback_only() -> None:
    runtime, client = runtime_with(FakeContainer([]))
    spec = InstanceSpec(
        image="slipway/run-node:latest",
        name="hello-web-1",
        mounts=[Mount(Path("/v/i"), "/mnt")],
        env={"PORT": "5000"},
        limits=Limits(),
        port=5000,
        labels={LABEL_APP: "hello"},
    )

    running = runtime.start_instance(spec)

    [kwargs] = client.containers.created
    assert kwargs["ports"] == {"5000/tcp": ("127.0.0.1", None)}
    assert kwargs["network"] == APP_NETWORK
    options = client.networks.get(APP_NETWORK).attrs["Options"]
    assert options == {"com.docker.network.bridge.enable_icc": "false"}  # no app reaches another
    assert kwargs["restart_policy"] == {"Name": "unless-stopped"}
    assert kwargs["labels"][LABEL_KIND] == "instance"
    assert kwargs["read_only"] is True
    assert "nano_cpus" not in kwargs
    assert kwargs["command"] is None
    assert running.host_port == 49999
    assert running.name == "hello-web-1"


def test_a_missing_image_says_how_to_build_it() -> None:
    runtime, _ = runtime_with(FakeContainer([]))
    with pytest.raises(ImageMissing, match=r"missing:latest .*slipway server images build"):
        runtime.run_build(build_spec(image="missing:latest"), lambda line: None)


def test_an_engine_that_cannot_be_reached() -> None:
    def unreachable() -> Any:
        raise docker.errors.DockerException("Error while fetching server API version")

    runtime = DockerRuntime(client_factory=unreachable)
    with pytest.raises(RuntimeUnavailable, match="not reachable: .*Is dockerd running"):
        runtime.ping()


def test_lines_are_split_across_chunks() -> None:
    def chunks() -> Iterator[bytes]:
        yield b"a\r\nb"
        yield b""
        yield b"c\n\xff\n"

    lines: list[str] = []
    _stream_lines(chunks(), lines.append)
    assert lines == ["a", "bc", "\ufffd"]


def test_events_are_mapped() -> None:
    raw = {
        "Type": "container",
        "Action": "die",
        "Actor": {
            "ID": "abc",
            "Attributes": {"exitCode": "137", "image": "x", LABEL_APP: "hello", "name": "n"},
        },
        "time": 1700000000,
        "timeNano": 1700000000500000000,
    }
    event = _event(raw)
    assert event.action == "die"
    assert event.container_id == "abc"
    assert event.exit_code == 137
    assert event.labels == {LABEL_APP: "hello"}
    assert event.time == pytest.approx(1700000000.5)
    exec_event = _event({**raw, "Action": "exec_start: supervisorctl status", "Actor": {}})
    assert exec_event.action == "exec_start"
    assert exec_event.exit_code is None


# -- the port probe, against real sockets on loopback ------------------------------------------


def _serve_once(behaviour: str) -> tuple[int, threading.Thread, list[bytes]]:
    """A one-connection server on 127.0.0.1: 'answer' replies, 'close' hangs up, 'silent' waits."""
    server = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def run() -> None:
        with server:
            conn, _ = server.accept()
            with conn:
                if behaviour == "close":
                    return
                conn.settimeout(2)
                received.append(conn.recv(1024))
                if behaviour == "answer":
                    conn.sendall(b"HTTP/1.0 404 Not Found\r\n\r\n")
                else:
                    time.sleep(0.5)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return server.getsockname()[1], thread, received


@pytest.mark.parametrize(
    ("behaviour", "live"), [("answer", True), ("silent", True), ("close", False)]
)
def test_the_probe_tells_a_listening_server_from_a_proxy_that_hangs_up(
    behaviour: str, live: bool
) -> None:
    port, thread, received = _serve_once(behaviour)
    assert _answers(port, None) is live
    thread.join(5)
    if behaviour != "close":  # what the app saw: one HEAD request, like a health check
        assert received and received[0].startswith(b"HEAD / HTTP/1.0\r\n")
