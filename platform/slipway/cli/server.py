"""`slipway server ...`: commands run on the host itself, as root."""

from __future__ import annotations

import click


@click.group()
def server() -> None:
    """Run and maintain the platform on this host (as root)."""


@server.group()
def images() -> None:
    """The tree of build and run images under images/."""
