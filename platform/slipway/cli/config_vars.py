"""`slipway config ...`: an app's config vars (each change makes a new release)."""

from __future__ import annotations

import click

from slipway.cli.client import Client, CliError
from slipway.cli.common import app_option, resolve_app
from slipway.cli.output import json_option, print_json
from slipway.cli.rollout import wait_for_newest, wait_option


def print_config(config: dict[str, str], as_json: bool) -> None:
    if as_json:
        print_json(config)
    elif not config:
        click.echo("No config vars.")
    else:
        width = max(len(k) for k in config)
        for key in sorted(config):
            click.echo(f"{key + ':':<{width + 1}} {config[key]}")


@click.group("config", invoke_without_command=True)
@app_option
@json_option
@click.pass_context
def config(ctx: click.Context, app: str | None, as_json: bool) -> None:
    """List an app's config vars, or get, set and unset them.

    \b
    Examples:
      slipway config -a hello
      slipway config:set -a hello GREETING=hi DEBUG=0
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_config, app=app, as_json=as_json)


@config.command("list")
@app_option
@json_option
def list_config(app: str | None, as_json: bool) -> None:
    """List the config vars.

    \b
    Example:
      slipway config:list -a hello --json
    """
    print_config(Client.from_environment().get(f"/apps/{resolve_app(app)}/config"), as_json)


@config.command("get")
@app_option
@click.argument("key")
def get(app: str | None, key: str) -> None:
    """Print one config var's value (exit status 1 when it is not set).

    \b
    Example:
      slipway config:get -a hello DATABASE_URL
    """
    values = Client.from_environment().get(f"/apps/{resolve_app(app)}/config")
    if key not in values:
        raise CliError(f"{key} is not set")
    click.echo(values[key])


def parse_assignments(pairs: tuple[str, ...]) -> dict[str, str]:
    """``("A=1", "B=x=y")`` as ``{"A": "1", "B": "x=y"}``; a pair without ``=`` is an error."""
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"{pair!r} is not KEY=VALUE")
        values[key] = value
    return values


@config.command("set")
@app_option
@click.argument("pairs", nargs=-1, required=True, metavar="KEY=VALUE...")
@json_option
@wait_option
def set_(app: str | None, pairs: tuple[str, ...], as_json: bool, no_wait: bool) -> None:
    """Set config vars; the app restarts with them as a new release.

    \b
    Example:
      slipway config:set -a hello GREETING=hi "MOTTO=ship it"
    """
    values = parse_assignments(pairs)
    client, name = Client.from_environment(), resolve_app(app)
    result = client.patch(f"/apps/{name}/config", values)
    print_config(result if isinstance(result, dict) else {}, as_json)
    if not no_wait:
        wait_for_newest(client, name)


@config.command("unset")
@app_option
@click.argument("keys", nargs=-1, required=True, metavar="KEY...")
@json_option
@wait_option
def unset(app: str | None, keys: tuple[str, ...], as_json: bool, no_wait: bool) -> None:
    """Remove config vars; the app restarts without them as a new release.

    \b
    Example:
      slipway config:unset -a hello DEBUG
    """
    body = dict.fromkeys(keys)
    client, name = Client.from_environment(), resolve_app(app)
    result = client.patch(f"/apps/{name}/config", body)
    print_config(result if isinstance(result, dict) else {}, as_json)
    if not no_wait:
        wait_for_newest(client, name)
