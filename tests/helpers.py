"""Small helpers shared by the tests."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

from slipway.runtime.docker import DockerRuntime


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# The managed-label value (and container-name suffix) of every Docker runtime a test makes
# directly: never the default platform's, so a running `make up` and the tests leave each
# other's containers alone.
TEST_PLATFORM = f"test{uuid.uuid4().hex[:8]}"


def scoped_runtime(**kwargs: Any) -> DockerRuntime:
    """A real Docker runtime scoped to this test run's own platform id."""
    return DockerRuntime(platform=TEST_PLATFORM, **kwargs)


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` every half second; AssertionError naming ``what`` past ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} (waited {timeout} s)")
