"""The `slipway` command: a client of the HTTP API, plus `slipway server ...` on the host."""

from __future__ import annotations

import click

from slipway.cli.apps import apps, git_credential, git_remote
from slipway.cli.config_vars import config
from slipway.cli.deploy import deploy
from slipway.cli.deploys import deploys
from slipway.cli.events import events
from slipway.cli.login import login, logout
from slipway.cli.processes import logs, open_, ps, scale, url
from slipway.cli.releases import releases, rollback
from slipway.cli.run import run
from slipway.cli.server import server
from slipway.cli.space_backups import BACKUP_COMMANDS
from slipway.cli.spaces import spaces
from slipway.cli.users import tokens, users
from slipway.cli.webhooks import webhooks

# Heroku/Dokku spellings that are not simply `<group>:<subcommand>`.
ALIASES = {
    "ps:scale": "scale",
    "releases:rollback": "rollback",
    "apps:open": "open",
    "apps:url": "url",
    "logs:tail": "logs",
}


class ColonGroup(click.Group):
    """A group that also answers to `group:subcommand` (such as `config:set`) and ALIASES."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, ALIASES.get(cmd_name, cmd_name))
        if command is not None or ":" not in cmd_name:
            return command
        group_name, _, sub_name = cmd_name.partition(":")
        group = super().get_command(ctx, group_name)
        if isinstance(group, click.Group):
            return group.get_command(ctx, sub_name)
        return None

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        # Report the name the user typed, so `--help` and errors read `slipway config:set`.
        name, command, rest = super().resolve_command(ctx, args)
        return (args[0] if args else name), command, rest


@click.group(cls=ColonGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="slipway")
def cli() -> None:
    """Slipway: deploy apps with `git push` or a tarball, on your own host.

    \b
    Example:
      slipway login                   # once: the API URL and your token
      slipway apps:create hello       # in your app's git repository
      git push slipway main           # build, release, and print the URL
    """


for command in (
    login,
    logout,
    apps,
    git_remote,
    git_credential,
    deploy,
    deploys,
    config,
    releases,
    rollback,
    ps,
    scale,
    logs,
    events,
    webhooks,
    run,
    users,
    tokens,
    open_,
    url,
    server,
    spaces,
):
    cli.add_command(command)

# spaces:backup, spaces:restore and spaces:backups live in cli/space_backups.py.
for _command in BACKUP_COMMANDS:
    spaces.add_command(_command)


def main() -> None:
    cli()
