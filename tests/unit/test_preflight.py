"""`slipway server up` checks the addresses its parts will bind before it starts them."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from slipway.config import Settings
from slipway.host import preflight
from slipway.host.supervisor import HostError
from tests.helpers import free_port


@pytest.fixture
def taken() -> Iterator[int]:
    """A port on 127.0.0.1 that a plain socket listens on."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield int(listener.getsockname()[1])


def local(settings: Settings, redis_port: int) -> Settings:
    return settings.with_overrides(
        redis_url=f"redis://127.0.0.1:{redis_port}/0",
        api_bind=f"127.0.0.1:{free_port()}",
        router_bind=f"127.0.0.1:{free_port()}",
    )


def test_a_taken_port_is_found_and_a_free_one_is_not(taken: int) -> None:
    assert preflight.bind_problem("127.0.0.1", taken) == "the address is in use"
    assert preflight.bind_problem("0.0.0.0", taken) == "the address is in use"
    assert preflight.bind_problem("127.0.0.1", free_port()) is None


def test_a_taken_redis_port_names_the_part_the_address_and_the_setting(
    settings: Settings, taken: int
) -> None:
    with pytest.raises(HostError) as error:
        preflight.check_addresses(local(settings, taken))
    assert str(error.value) == (
        f"redis could not start on 127.0.0.1:{taken}: the address is in use. "
        "Set SLIPWAY_REDIS_URL to a free port."
    )


def test_every_taken_address_is_named(settings: Settings, taken: int) -> None:
    tuned = local(settings, free_port()).with_overrides(
        api_bind=f"127.0.0.1:{taken}", router_bind=f"*:{taken}"
    )
    with pytest.raises(HostError) as error:
        preflight.check_addresses(tuned)
    message = str(error.value)
    assert f"the API could not start on 127.0.0.1:{taken}: the address is in use." in message
    assert "Set SLIPWAY_API_BIND to a free address." in message
    assert f"the router (nginx) could not start on 0.0.0.0:{taken}" in message
    assert "Set SLIPWAY_ROUTER_BIND to a free address." in message
    assert "redis" not in message


def test_an_address_held_by_this_platforms_own_processes_counts_as_free(
    settings: Settings, taken: int
) -> None:
    me = os.getpid()
    assert me in preflight.listening_pids(taken)
    assert me in preflight.process_tree(os.getppid())
    preflight.check_addresses(local(settings, taken), ours=preflight.process_tree(os.getppid()))
    with pytest.raises(HostError, match="the address is in use"):
        preflight.check_addresses(local(settings, taken), ours={me + 1_000_000})


def test_nobody_listens_on_a_free_port() -> None:
    assert preflight.listening_pids(free_port()) == set()


def test_a_remote_broker_is_not_ours_to_start(settings: Settings) -> None:
    remote = settings.with_overrides(redis_url="redis://broker.internal:6379/0")
    # The wake service lives in the API's process.
    assert [p.program for p in preflight.parts(remote)] == ["api", "router", "api"]


def test_an_unreachable_docker_names_where_it_was_looked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nowhere/docker.sock")
    assert preflight.docker_message() == (
        "Docker could not be reached at unix:///nowhere/docker.sock: the engine does not answer. "
        "Start dockerd (`make docker`), or set DOCKER_HOST to the engine's socket."
    )


def test_no_redis_answering_has_no_pid() -> None:
    nothing = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    assert preflight.redis_pid(nothing) is None
