"""The outside systems the services talk to, chosen by settings and handed around as one object."""

from __future__ import annotations

from dataclasses import dataclass

from slipway.config import Settings
from slipway.router.base import Router
from slipway.runtime.base import ContainerRuntime
from slipway.services.artifacts import ArtifactStore, FilesystemArtifacts
from slipway.services.runtimes.node import NodeReleases, Registry
from slipway.volumes.base import VolumeProvider
from slipway.volumes.spaces import SpaceError, SpaceProvider


@dataclass
class Adapters:
    runtime: ContainerRuntime
    volumes: VolumeProvider
    router: Router
    artifacts: ArtifactStore
    node_releases: NodeReleases | None = None  # None: the npm registry of the settings
    space_provider: SpaceProvider | None = None  # None: this platform keeps no spaces

    @property
    def spaces(self) -> SpaceProvider:
        if self.space_provider is None:
            raise SpaceError("this platform has no space provider")
        return self.space_provider


def build_adapters(settings: Settings) -> Adapters:
    """The real implementations: Docker, the configured volume provider, nginx, files."""
    # Imported here so that importing this module never needs Docker or nginx.
    from slipway.router.nginx import NginxRouter
    from slipway.runtime import get_runtime
    from slipway.volumes import get_volume_provider
    from slipway.volumes.spaces import get_space_provider

    return Adapters(
        runtime=get_runtime(settings),
        volumes=get_volume_provider(settings),
        router=NginxRouter(settings),
        artifacts=FilesystemArtifacts(settings.artifacts_dir),
        node_releases=Registry(settings.npm_registry, settings.ca_bundle),
        space_provider=get_space_provider(settings),
    )
