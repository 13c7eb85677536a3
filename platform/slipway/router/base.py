"""What the platform tells the router: which apps exist and where their live instances listen."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Route:
    app: str
    upstreams: list[int] = field(default_factory=list)  # host ports on 127.0.0.1; empty: 503


class Router(Protocol):
    def apply(self, routes: list[Route]) -> None:
        """Render the whole configuration, check it, swap it in atomically and reload."""

    def start(self) -> None:
        """Start the router process if it is not running."""

    def stop(self) -> None:
        """Stop the router process."""
