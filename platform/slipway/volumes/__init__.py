"""Size-capped volumes: a provider protocol and the implementation chosen by a setting."""

from __future__ import annotations

from slipway.config import Settings
from slipway.volumes.base import Volume, VolumeError, VolumeProvider, VolumeUsage

__all__ = ["Volume", "VolumeError", "VolumeProvider", "VolumeUsage", "get_volume_provider"]


def get_volume_provider(settings: Settings) -> VolumeProvider:
    """The provider named by ``SLIPWAY_VOLUME_PROVIDER``: loopfile, lvm or directory."""
    name = settings.volume_provider
    if name == "loopfile":
        from slipway.volumes.loopfile import LoopfileProvider

        return LoopfileProvider(settings.volumes_dir)
    if name == "lvm":
        from slipway.volumes.lvm import LvmProvider

        return LvmProvider(settings.volumes_dir, settings.lvm_volume_group, settings.lvm_thin_pool)
    if name == "directory":
        from slipway.volumes.directory import DirectoryProvider

        return DirectoryProvider(settings.volumes_dir)
    raise VolumeError(f"unknown volume provider {name!r}: use loopfile, lvm or directory")
