"""The `slipway` command: a client of the HTTP API, plus `slipway server ...` on the host."""

from __future__ import annotations

import click

from slipway.cli.server import server


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="slipway")
def cli() -> None:
    """Slipway: deploy apps with `git push` or a tarball, on your own host.

    \b
    Example:
      slipway server up          # on the host: start the platform
    """


cli.add_command(server)


def main() -> None:
    cli()
