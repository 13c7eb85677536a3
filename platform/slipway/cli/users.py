"""`slipway users` (admins: list, create and delete users) and `slipway tokens` (your own)."""

from __future__ import annotations

import click

from slipway.cli.client import Client, CliError
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
      slipway users:delete alice --confirm alice
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


@users.command("delete")
@click.argument("username")
@click.option("--force", is_flag=True, help="Also destroy the apps the user owns.")
@click.option("--confirm", metavar="NAME", help="The user's name, to skip the question.")
@json_option
def delete(username: str, force: bool, confirm: str | None, as_json: bool) -> None:
    """Delete a user (admins only): their tokens and dashboard sessions stop working at once.

    A user who owns apps is refused unless --force, which destroys those apps too.

    \b
    Example:
      slipway users:delete alice --confirm alice
    """
    if confirm is None:
        also = " and every app they own" if force else ""
        click.echo(f"This deletes the user {username}{also}. It cannot be undone.")
        confirm = click.prompt("Type the username to confirm", default="", show_default=False)
    if confirm != username:
        raise CliError(f"confirmation did not match {username!r}: nothing deleted")
    query = "?force=1" if force else ""
    deleted = Client.from_environment().delete(f"/users/{username}{query}")
    if as_json:
        print_json(deleted)
        return
    for app in deleted.get("destroyed_apps", []):
        click.echo(f"Destroyed {app}.")
    click.echo(f"Deleted {username}.")


@click.group("tokens", invoke_without_command=True)
@click.option("--user", "username", metavar="NAME", help="Another user's tokens (admins only).")
@json_option
@click.pass_context
def tokens(ctx: click.Context, username: str | None, as_json: bool) -> None:
    """Your API tokens. Without a subcommand: list them (never their secrets).

    \b
    Examples:
      slipway tokens
      slipway tokens:create --name ci     # for a CI system; shown only once
      slipway tokens:revoke 7             # stops working at once, git push included
    """
    if ctx.invoked_subcommand is not None:
        return
    params = {"user": username} if username else None
    listed = Client.from_environment().get("/user/tokens", params=params)
    if as_json:
        print_json(listed)
    else:
        columns = ["id", "name", "created_at", "last_used_at"]
        print_table(listed, ["user", *columns] if username else columns, "No tokens.")


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


@tokens.command("revoke")
@click.argument("token_id", type=int)
def revoke_token(token_id: int) -> None:
    """Revoke a token by its id (from `slipway tokens`); an admin may revoke anyone's.

    \b
    Example:
      slipway tokens:revoke 7
    """
    Client.from_environment().delete(f"/user/tokens/{token_id}")
    click.echo(f"Revoked token {token_id}.")
