"""What the platform needs from a space provider: persistent, size-capped trees that can be
checkpointed and forked.

A space's data is known to its provider only by a *key* the platform makes (``sp-<id>``, never a
user's words). Each space has one mounted *tree*: a directory owned by mop that containers bind
at ``/spaces/<slot>/tree``. The tree sits *inside* the space's own filesystem, so while a space
is not mounted its tree path does not exist and a container that asks for it fails to start
instead of writing into the host's disk.
"""

from __future__ import annotations

import builtins
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from slipway.config import Settings
from slipway.volumes.base import VolumeError

MIN_SIZE = 32 * 1024**2  # a journalled filesystem needs a few MB; smaller spaces make no sense
KEY = re.compile(r"sp-[1-9][0-9]{0,17}")
CHECKPOINT = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")


class SpaceError(VolumeError):
    """A space could not be made, mounted, checkpointed, forked or removed; the message says why."""


@dataclass(frozen=True)
class SpaceUsage:
    used: int  # bytes in use inside the space
    size: int  # its cap


class SpaceProvider(Protocol):
    name: str  # "btrfs" or "directory"
    # True when checkpoints and forks copy the data (time grows with it) instead of sharing it.
    copies: bool

    def create(self, key: str, size: int) -> Path:
        """Make and mount an empty space of ``size`` bytes; its tree (mop's) is returned."""

    def tree(self, key: str) -> Path:
        """The mounted tree of a space; :class:`SpaceError` when it is missing or not mounted."""

    def exists(self, key: str) -> bool:
        """Whether the provider holds a space of that key (mounted or not)."""

    def checkpoint(self, key: str, checkpoint: str) -> None:
        """A read-only point in time of the space, named ``checkpoint``; the space stays live."""

    def checkpoint_tree(self, key: str, checkpoint: str) -> Path:
        """A read-only view of a checkpoint's tree, for a backup of that point in time."""

    def delete_checkpoint(self, key: str, checkpoint: str) -> None:
        """Forget a checkpoint; one that does not exist is fine."""

    def fork(self, key: str, checkpoint: str | None, new_key: str) -> Path:
        """A new writable space of the same size from the space now, or from its checkpoint;
        the new space is mounted and its tree returned."""

    def destroy(self, key: str) -> None:
        """Unmount and delete a space with its checkpoints; one that does not exist is fine."""

    def usage(self, key: str) -> SpaceUsage:
        """Bytes used and the cap."""

    def keys(self) -> builtins.list[str]:
        """Every space key the provider holds."""

    def recover(self) -> builtins.list[str]:
        """On start (and after a host restart): mount every space that is not mounted, drop
        half-made ones; the keys touched."""


def check_key(key: str) -> str:
    if not KEY.fullmatch(key):
        raise SpaceError(f"invalid space key {key!r}")
    return key


def check_checkpoint(name: str) -> str:
    if not CHECKPOINT.fullmatch(name):
        raise SpaceError(
            f"invalid checkpoint name {name!r}: use up to 63 lowercase letters, digits, '.', '_' "
            "and '-', starting with a letter or digit"
        )
    return name


def get_space_provider(settings: Settings) -> SpaceProvider:
    """The provider named by ``SLIPWAY_SPACES_PROVIDER``: btrfs or directory."""
    name = settings.spaces_provider
    if name == "btrfs":
        from slipway.volumes.btrfs_spaces import BtrfsSpaces

        return BtrfsSpaces(settings.spaces_dir, settings.spaces_pool_size)
    if name == "directory":
        from slipway.volumes.directory_spaces import DirectorySpaces

        return DirectorySpaces(settings.spaces_dir)
    raise SpaceError(f"unknown spaces provider {name!r}: use btrfs or directory")
