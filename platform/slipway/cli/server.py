"""`slipway server ...`: commands run on the host itself, as root."""

from __future__ import annotations

import click

from slipway.cli.server_images import images
from slipway.cli.server_platform import register_platform_commands


@click.group()
def server() -> None:
    """Run and maintain the platform on this host (as root)."""


server.add_command(images)
register_platform_commands(server)
