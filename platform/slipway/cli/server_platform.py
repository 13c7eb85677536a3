"""`slipway server up|down|...`: start and stop the control plane on this host."""

from __future__ import annotations

import click


def register_platform_commands(group: click.Group) -> None:
    """Add the platform commands (up, down, status, ...) to `slipway server`."""
