"""`slipway users` (admins: list and create users) and `slipway tokens:create` (your own)."""

from __future__ import annotations

import click

from slipway.cli.client import Client
from slipway.cli.output import json_option, print_json, print_table


@click.group("users", invoke_without_command=True)
@json_option
@click.pass_context
def users(ctx: click.Context, as_json: bool) -> None:
    """The platform's users (admins only). Without a subcommand: list them.

    \b
    Examples:
      slipway users
      slipway users:create alice          # prints alice's first token, once
    """
    if ctx.invoked_subcommand is None:
        listed = Client.from_environment().get("/users")
        if as_json:
            print_json(listed)
        else:
            print_table(listed, ["username", "is_admin"], "No users.")


@users.command("create")
@click.argument("username")
@click.option("--admin", is_flag=True, help="Make the user an admin (sees and changes every app).")
@json_option
def create(username: str, admin: bool, as_json: bool) -> None:
    """Create a user and print their first API token (shown only this once).

    \b
    Example:
      slipway users:create alice
    """
    made = Client.from_environment().post("/users", {"username": username, "is_admin": admin})
    if as_json:
        print_json(made)
        return
    kind = "admin" if made.get("is_admin") else "user"
    click.echo(f"Created {kind} {made['username']}. Their token (shown only once):")
    click.echo(made["token"])


@click.group("tokens")
def tokens() -> None:
    """Your API tokens.

    \b
    Example:
      slipway tokens:create --name ci     # for a CI system; shown only once
    """


@tokens.command("create")
@click.option("--name", default="", help="What the token is for, such as 'ci'.")
@json_option
def create_token(name: str, as_json: bool) -> None:
    """Make another token for yourself (one per CI system, say); shown only once.

    \b
    Example:
      slipway tokens:create --name ci
    """
    made = Client.from_environment().post("/user/tokens", {"name": name})
    if as_json:
        print_json(made)
    else:
        click.echo(made["token"])
