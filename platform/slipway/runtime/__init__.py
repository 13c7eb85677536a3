"""The container runtime adapter: a protocol and the implementation chosen by a setting."""

from __future__ import annotations

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
    """The value of the managed label for this platform (``Settings.platform_id``)."""
    return settings.platform_id
