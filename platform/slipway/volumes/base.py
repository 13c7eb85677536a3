"""What the platform needs from a volume: a capped, mounted directory it can hand to a container."""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class VolumeError(Exception):
    """A volume could not be created, mounted or destroyed; the message says why."""


@dataclass(frozen=True)
class Volume:
    name: str
    path: Path  # the mounted directory on the host
    size: int  # the cap, in bytes (0 for the uncapped directory provider)


@dataclass(frozen=True)
class VolumeUsage:
    used: int  # bytes written inside the volume
    size: int  # the cap
    allocated: int  # bytes the backing store really takes on the host (thin: grows on write)


class VolumeProvider(Protocol):
    def create(self, name: str, size: int) -> Volume:
        """Create and mount a volume of ``size`` bytes; the mount point is owned by mop."""

    def get(self, name: str) -> Volume | None:
        """The mounted volume of that name, or None."""

    def destroy(self, name: str) -> None:
        """Unmount and delete; a volume that does not exist is fine."""

    def usage(self, name: str) -> VolumeUsage:
        """How much is used, the cap, and what the host really spends on it."""

    def list(self) -> list[Volume]:
        """Every volume this provider holds."""

    def recover(self) -> builtins.list[str]:
        """On start: remount volumes a crash left unmounted, drop half-made ones; names touched."""
