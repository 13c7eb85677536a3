"""The container runtime adapter: a protocol and the implementation chosen by a setting."""

from __future__ import annotations

import hashlib

from slipway.config import Settings
from slipway.runtime.base import (
    BuildResult,
    BuildSpec,
    ContainerEvent,
    ContainerInfo,
    ContainerRuntime,
    ExecResult,
    InstanceSpec,
    Limits,
    Mount,
    RunningInstance,
    RuntimeUnavailable,
)

__all__ = [
    "BuildResult",
    "BuildSpec",
    "ContainerEvent",
    "ContainerInfo",
    "ContainerRuntime",
    "ExecResult",
    "InstanceSpec",
    "Limits",
    "Mount",
    "RunningInstance",
    "RuntimeUnavailable",
    "get_runtime",
    "platform_id",
]


def get_runtime(settings: Settings | None = None) -> ContainerRuntime:
    """The Docker runtime (the only backend so far; Swarm would be chosen here)."""
    from slipway.runtime.docker import DockerRuntime

    return DockerRuntime(platform=platform_id(settings) if settings else "1")


def platform_id(settings: Settings) -> str:
    """The value of the managed label for this platform: "1" for the default data directory."""
    if settings.data_dir == Settings().data_dir:
        return "1"
    return hashlib.sha256(str(settings.data_dir).encode()).hexdigest()[:12]
