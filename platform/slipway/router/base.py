"""What the platform tells the router: which apps exist and where their live instances listen."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Route:
    """One app's routing.

    ``wakeable``: the app has a current release and web instances in its formation, so the wake
    service can start it (it backs up the instances, or stands in for them when there are
    none); otherwise an app with no instance answers 503. ``sleeping``: the app sleeps, every
    request goes to the wake service.
    """

    app: str
    upstreams: list[int] = field(default_factory=list)  # host ports on 127.0.0.1
    wakeable: bool = False
    sleeping: bool = False


class Router(Protocol):
    def apply(self, routes: list[Route]) -> None:
        """Render the whole configuration, check it, swap it in atomically and reload."""

    def start(self) -> None:
        """Start the router process if it is not running."""

    def stop(self) -> None:
        """Stop the router process."""
