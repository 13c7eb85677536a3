"""The container runtime adapter: a protocol and the implementation chosen by a setting."""

from __future__ import annotations

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
]


def get_runtime() -> ContainerRuntime:
    """The Docker runtime (the only backend so far; Swarm would be chosen here)."""
    from slipway.runtime.docker import DockerRuntime

    return DockerRuntime()
