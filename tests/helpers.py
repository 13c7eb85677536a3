"""Small helpers shared by the tests."""

from __future__ import annotations

import socket
import uuid
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
