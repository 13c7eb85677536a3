"""The Docker runtime against the real engine and the images from `slipway server images build`."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest
import requests

from slipway.runtime.base import (
    LABEL_APP,
    LABEL_INSTANCE,
    BuildSpec,
    ImageMissing,
    InstanceSpec,
    Limits,
    Mount,
    RuntimeUnavailable,
)
from slipway.runtime.docker import DockerRuntime
from slipway.services.layout import MOP_GID, MOP_UID
from slipway.volumes.loopfile import LoopfileProvider
from tests.helpers import free_port, scoped_runtime

MB = 1024**2
BASE = "slipway/base:latest"
RUN_BASE = "slipway/run-base:latest"
IMAGE_WAIT = 10 * 60  # the images may still be building when the tests start

pytestmark = pytest.mark.slow


def wait_for_image(name: str) -> str:
    """The image, once `slipway server images build` has made it (bounded wait)."""
    client = docker.from_env()
    deadline = time.monotonic() + IMAGE_WAIT
    while True:
        try:
            client.images.get(name)
            return name
        except docker.errors.ImageNotFound:
            if time.monotonic() > deadline:
                pytest.fail(f"no image {name}: run `slipway server images build` first")
            time.sleep(10)


@pytest.fixture(scope="module")
def base_image() -> str:
    return wait_for_image(BASE)


@pytest.fixture(scope="module")
def run_base_image() -> str:
    return wait_for_image(RUN_BASE)


@pytest.fixture
def runtime() -> DockerRuntime:
    return scoped_runtime()


@pytest.fixture
def app() -> Iterator[str]:
    """A unique app label for the test; every container carrying it is removed afterwards."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    yield name
    client = docker.from_env()
    for c in client.containers.list(all=True, filters={"label": f"{LABEL_APP}={name}"}):
        c.remove(force=True)


@pytest.fixture
def mnt(tmp_path: Path) -> Path:
    """A mop-owned directory to mount at /mnt, laid out like an instance volume."""
    root = tmp_path / "mnt"
    for sub in ("", "app", "tmp", "log"):
        (root / sub).mkdir(exist_ok=True)
        os.chown(root / sub, MOP_UID, MOP_GID)
    (root / "app" / "hello.txt").write_text("hello from the volume\n")
    return root


def build(image: str, app: str, script: str, **changes: object) -> BuildSpec:
    spec = BuildSpec(
        image=image,
        name=f"{app}-build",
        mounts=[],
        env={"GREETING": "hi"},
        limits=Limits(memory=128 * MB, pids=64),
        timeout=60,
        labels={LABEL_APP: app},
        command=["sh", "-c", script],
    )
    for key, value in changes.items():
        setattr(spec, key, value)
    return spec


def instance(image: str, app: str, mnt: Path, command: list[str]) -> InstanceSpec:
    return InstanceSpec(
        image=image,
        name=f"{app}-web-1",
        mounts=[Mount(mnt, "/mnt")],
        env={"PORT": "5000"},
        limits=Limits(memory=128 * MB, pids=64),
        port=5000,
        labels={LABEL_APP: app, LABEL_INSTANCE: "web-1"},
        command=command,
    )


def names_of(app: str) -> list[str]:
    client = docker.from_env()
    return [
        c.name for c in client.containers.list(all=True, filters={"label": f"{LABEL_APP}={app}"})
    ]


# -- builds ---------------------------------------------------------------------------------


def test_a_build_streams_its_lines_in_order(runtime: DockerRuntime, base_image: str, app: str):
    lines: list[str] = []
    script = 'for i in 1 2 3 4 5; do echo "-----> step $i $GREETING"; done; echo oops >&2'

    result = runtime.run_build(build(base_image, app, script), lines.append)

    assert result.ok
    # stdout keeps its order; stderr is a separate stream and may interleave anywhere.
    assert [line for line in lines if line != "oops"] == [
        f"-----> step {i} hi" for i in range(1, 6)
    ]
    assert lines.count("oops") == 1
    assert names_of(app) == []  # always removed


def test_a_quiet_build_keeps_streaming(base_image: str, app: str) -> None:
    # The SDK's request timeout (2 s here) must not end the log stream of a silent step.
    runtime = scoped_runtime(client_factory=lambda: docker.from_env(timeout=2))
    lines: list[str] = []
    result = runtime.run_build(build(base_image, app, "echo a; sleep 4; echo b"), lines.append)
    assert result.ok
    assert lines == ["a", "b"]


def test_a_failing_build_reports_its_exit_code(runtime: DockerRuntime, base_image: str, app: str):
    result = runtime.run_build(build(base_image, app, "echo cannot; exit 7"), lambda line: None)
    assert (result.exit_code, result.timed_out, result.ok) == (7, False, False)


def test_a_build_past_its_timeout_is_killed(runtime: DockerRuntime, base_image: str, app: str):
    lines: list[str] = []
    spec = build(base_image, app, "echo started; sleep 120; echo never", timeout=3)

    result = runtime.run_build(spec, lines.append)

    assert result.timed_out
    assert result.exit_code is None
    assert not result.ok
    assert 3 <= result.duration < 20
    assert lines == ["started"]
    assert names_of(app) == []


def test_a_build_writes_only_to_its_mounts(
    runtime: DockerRuntime, base_image: str, app: str, tmp_path: Path
) -> None:
    volumes = LoopfileProvider(tmp_path / "volumes")
    output = volumes.create("output", 32 * MB)
    try:
        script = (
            "touch /usr/evil 2>&1 || echo usr-refused; "
            "touch /evil 2>&1 || echo root-refused; "
            "touch /tmp/scratch && echo tmp-ok; "
            "echo built > /mnt/app/result && echo output-ok; "
            "id -u"
        )
        lines: list[str] = []
        spec = build(base_image, app, script, mounts=[Mount(output.path, "/mnt/app")])

        result = runtime.run_build(spec, lines.append)

        assert result.ok, lines
        assert "usr-refused" in lines
        assert "root-refused" in lines
        assert any("Read-only file system" in line for line in lines)
        assert {"tmp-ok", "output-ok", str(MOP_UID)} <= set(lines)
        assert (output.path / "result").read_text() == "built\n"
        assert (output.path / "result").stat().st_uid == MOP_UID
    finally:
        volumes.destroy("output")


def test_every_container_is_named_after_its_app(
    runtime: DockerRuntime, base_image: str, app: str, mnt: Path
) -> None:
    """The hostname is the app's name (Emergence's default), in builds, one-offs and instances."""
    lines: list[str] = []
    assert runtime.run_build(build(base_image, app, "hostname; uname -n"), lines.append).ok
    assert lines == [app, app]
    running = runtime.start_instance(instance(base_image, app, mnt, ["sleep", "120"]))
    shown = runtime.exec(running.container_id, ["hostname"])
    assert (shown.exit_code, shown.output.strip()) == (0, app)
    container = docker.from_env().containers.get(running.container_id)
    assert container.attrs["Config"]["Hostname"] == app
    runtime.stop(running.container_id, timeout=1)


def test_a_missing_image_says_how_to_build_it(runtime: DockerRuntime, app: str) -> None:
    spec = build("slipway-test/no-such-image:latest", app, "true")
    with pytest.raises(ImageMissing, match="slipway server images build"):
        runtime.run_build(spec, lambda line: None)


def test_an_oom_kill_is_an_event(runtime: DockerRuntime, base_image: str, app: str) -> None:
    since = time.time() - 1
    # tail keeps the whole newline-free stream in memory: it grows until the kernel kills it.
    spec = build(base_image, app, "tail /dev/zero", limits=Limits(memory=32 * MB, pids=64))

    result = runtime.run_build(spec, lambda line: None)

    assert result.exit_code == 137
    events = list(runtime.events(since=since, until=time.time() + 1))
    mine = [e for e in events if e.labels.get(LABEL_APP) == app]
    assert "oom" in [e.action for e in mine]
    [die] = [e for e in mine if e.action == "die"]
    assert die.exit_code == 137
    assert all(since <= e.time <= time.time() for e in mine)


# -- instances ------------------------------------------------------------------------------


def test_an_instance_publishes_on_loopback_and_answers(
    runtime: DockerRuntime, run_base_image: str, app: str, mnt: Path
) -> None:
    server = ["python3", "-m", "http.server", "5000", "--directory", "/mnt/app"]

    running = runtime.start_instance(instance(run_base_image, app, mnt, server))

    attrs = docker.from_env().containers.get(running.container_id).attrs
    bindings = attrs["NetworkSettings"]["Ports"]["5000/tcp"]
    assert {b["HostIp"] for b in bindings} == {"127.0.0.1"}
    assert running.host_port == int(bindings[0]["HostPort"])
    assert attrs["HostConfig"]["ReadonlyRootfs"] is True
    assert attrs["HostConfig"]["CapDrop"] == ["ALL"]
    assert attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert attrs["Config"]["User"] == f"{MOP_UID}:{MOP_GID}"

    assert runtime.wait_for_port(running.host_port, timeout=30)
    assert runtime.wait_for_port(running.host_port, timeout=30, health_path="/hello.txt")
    assert not runtime.wait_for_port(running.host_port, timeout=1, health_path="/missing")
    reply = requests.get(f"http://127.0.0.1:{running.host_port}/hello.txt", timeout=5)
    assert reply.text == "hello from the volume\n"


def test_wait_for_port_is_false_when_nothing_listens(
    runtime: DockerRuntime, base_image: str, app: str, mnt: Path
) -> None:
    started = time.monotonic()
    assert not runtime.wait_for_port(free_port(), timeout=1)
    assert time.monotonic() - started < 5

    # Published, but nothing listens inside: Docker's proxy accepts, then hangs up.
    running = runtime.start_instance(instance(base_image, app, mnt, ["sleep", "120"]))
    assert not runtime.wait_for_port(running.host_port, timeout=2)


def test_exec_list_and_stop(runtime: DockerRuntime, base_image: str, app: str, mnt: Path) -> None:
    running = runtime.start_instance(instance(base_image, app, mnt, ["sleep", "120"]))

    result = runtime.exec(running.container_id, ["sh", "-c", "id -u; echo warn >&2; exit 3"])
    assert result.exit_code == 3
    assert result.output.split()[0] == str(MOP_UID)
    assert "warn" in result.output

    [info] = runtime.list({LABEL_APP: app})
    assert info.container_id == running.container_id
    assert info.name == f"{app}-web-1"
    assert info.status == "running"
    assert info.host_port == running.host_port
    assert info.labels[LABEL_INSTANCE] == "web-1"
    assert runtime.list({LABEL_APP: app, LABEL_INSTANCE: "web-2"}) == []
    assert running.container_id in {i.container_id for i in runtime.list()}

    runtime.stop(running.container_id, timeout=1)

    assert runtime.list({LABEL_APP: app}) == []
    with pytest.raises(docker.errors.NotFound):
        docker.from_env().containers.get(running.container_id)
    runtime.stop(running.container_id)  # already gone: fine


def test_a_running_instance_gets_a_new_memory_limit_in_place(
    runtime: DockerRuntime, base_image: str, app: str, mnt: Path
) -> None:
    running = runtime.start_instance(instance(base_image, app, mnt, ["sleep", "120"]))
    try:
        runtime.update_limits(running.container_id, Limits(memory=96 * 1024**2))
        container = docker.from_env().containers.get(running.container_id)
        host = container.attrs["HostConfig"]
        assert host["Memory"] == host["MemorySwap"] == 96 * 1024**2
        assert container.status == "running"  # not restarted
        limit = runtime.exec(
            running.container_id, ["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]
        )
        assert limit.output.strip() == str(96 * 1024**2)
    finally:
        runtime.stop(running.container_id, timeout=1)


def test_logs_of_an_instance(runtime: DockerRuntime, base_image: str, app: str, mnt: Path):
    command = ["sh", "-c", "echo first; echo second; sleep 120"]
    running = runtime.start_instance(instance(base_image, app, mnt, command))
    deadline = time.monotonic() + 10
    while "second" not in runtime.logs(running.container_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert runtime.logs(running.container_id, tail=1) == "second\n"


# -- the engine itself ----------------------------------------------------------------------


def test_ping(runtime: DockerRuntime) -> None:
    runtime.ping()


def test_ping_with_an_unreachable_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{free_port()}")
    with pytest.raises(RuntimeUnavailable, match="not reachable.*Is dockerd running"):
        DockerRuntime().ping()
