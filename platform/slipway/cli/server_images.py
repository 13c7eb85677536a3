"""`slipway server images ...`: build the tree of images under images/."""

from __future__ import annotations

import sys

import click

from slipway.config import get_settings
from slipway.runtime.base import RuntimeUnavailable
from slipway.runtime.images import ImageBuilder, ImageBuildError, connect


def _builder() -> ImageBuilder:
    settings = get_settings()
    try:
        return ImageBuilder(
            connect(), settings.images_dir, settings.image_prefix, app_uid=settings.app_uid
        )
    except (RuntimeUnavailable, ImageBuildError) as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
def images() -> None:
    """The tree of build and run images under images/."""


@images.command("build")
@click.argument("names", nargs=-1)
@click.option("-v", "--verbose", is_flag=True, help="Show every line of the image builds.")
def build(names: tuple[str, ...], verbose: bool) -> None:
    """Build NAMES (and their missing ancestors), or the whole tree; unchanged ones are skipped.

    \b
    Examples:
      slipway server images build             # the whole tree
      slipway server images build run-node    # run-node, after run-base and base if needed
    """
    builder = _builder()

    def say(line: str) -> None:
        click.echo(line)
        sys.stdout.flush()

    try:
        outcomes = builder.build(names, say=say, verbose=say if verbose else None)
    except ImageBuildError as exc:
        raise click.ClickException(str(exc)) from exc
    built = sum(1 for o in outcomes if o.built)
    click.echo(f"-----> {built} built, {len(outcomes) - built} unchanged")


@images.command("list")
def list_images() -> None:
    """Every image of the tree, its content tag, and whether it is built."""
    builder = _builder()
    try:
        states = builder.states()
    except ImageBuildError as exc:
        raise click.ClickException(str(exc)) from exc
    for state in states:
        size = f"{state.size / 1024**2:.0f} MB" if state.size else "-"
        status = "built" if state.present else "missing"
        parent = state.parent or "(rootfs)"
        name = builder.repository(state.name)
        click.echo(f"{name:<24} {state.content_tag}  {status:<8} {size:>7}  from {parent}")
