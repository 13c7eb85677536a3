"""`slipway server images ...`: build the tree of images under images/."""

from __future__ import annotations

import click


@click.group()
def images() -> None:
    """The tree of build and run images under images/."""
