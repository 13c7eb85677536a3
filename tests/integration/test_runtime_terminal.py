"""The Docker runtime's one-off containers with a terminal, against the real engine."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator

import docker
import pytest

from slipway.runtime.base import LABEL_APP, BuildResult, Terminal, TerminalSize
from slipway.runtime.docker import DockerRuntime
from tests.helpers import scoped_runtime
from tests.integration.test_runtime_docker import BASE, build, names_of, wait_for_image

pytestmark = pytest.mark.slow

READ_LIMIT = 30  # seconds any one test may spend reading a terminal


@pytest.fixture(scope="module")
def image() -> str:
    return wait_for_image(BASE)


@pytest.fixture
def runtime() -> DockerRuntime:
    return scoped_runtime()


@pytest.fixture
def app() -> Iterator[str]:
    name = f"test-{uuid.uuid4().hex[:10]}"
    yield name
    client = docker.from_env()
    for c in client.containers.list(all=True, filters={"label": f"{LABEL_APP}={name}"}):
        c.remove(force=True)


def read_all(terminal: Terminal, into: bytearray) -> None:
    """Everything the terminal shows until its output ends (bounded in time)."""
    deadline = time.monotonic() + READ_LIMIT
    while time.monotonic() < deadline:
        data = terminal.read()
        if not data:
            return
        into += data
    raise AssertionError(f"the terminal's output did not end in {READ_LIMIT} s")


def test_a_terminal_is_a_tty_of_the_given_size_and_gives_the_exit_status(
    runtime: DockerRuntime, image: str, app: str
) -> None:
    shown = bytearray()

    def attach(terminal: Terminal) -> None:
        terminal.write(b'stty size; tty; id -un; echo "host $(hostname)"; exit 5\n')
        read_all(terminal, shown)

    spec = build(image, app, "", command=["sh"], name=f"{app}-run")
    result = runtime.run_terminal(spec, TerminalSize(33, 111), attach)

    text = shown.decode(errors="replace")
    assert result.exit_code == 5 and not result.timed_out, text
    assert "33 111\r\n" in text
    assert re.search(r"/dev/pts/\d+\r\n", text), text
    assert "mop\r\n" in text
    assert f"host {app}\r\n" in text
    assert names_of(app) == []


def test_a_terminal_past_the_time_limit_is_killed(
    runtime: DockerRuntime, image: str, app: str
) -> None:
    shown = bytearray()
    spec = build(image, app, "", command=["sh"], name=f"{app}-run", timeout=3)

    result = runtime.run_terminal(spec, TerminalSize(24, 80), lambda t: read_all(t, shown))

    assert result.timed_out and result.exit_code is None
    assert 3 <= result.duration < 20
    assert names_of(app) == []


def test_a_terminal_whose_user_went_away_is_stopped_and_removed(
    runtime: DockerRuntime, image: str, app: str
) -> None:
    spec = build(image, app, "", command=["sleep", "300"], name=f"{app}-run")
    started = time.monotonic()

    result: BuildResult = runtime.run_terminal(spec, TerminalSize(24, 80), lambda t: None)

    assert not result.timed_out
    assert time.monotonic() - started < 30
    assert names_of(app) == []
