"""`slipway releases` and `slipway rollback`."""

from __future__ import annotations

import click

from slipway.cli.client import Client, CliError
from slipway.cli.common import app_option, resolve_app
from slipway.cli.output import json_option, print_json, print_table
from slipway.cli.rollout import wait_option, wait_until_live


@click.command("releases")
@app_option
@json_option
def releases(app: str | None, as_json: bool) -> None:
    """List an app's releases, newest first.

    \b
    Example:
      slipway releases -a hello
    """
    rows = Client.from_environment().get(f"/apps/{resolve_app(app)}/releases")
    if as_json:
        print_json(rows)
        return
    for row in rows:
        row["version"] = f"v{row.get('version')}"
    columns = ["version", "description", "created_at"]
    print_table(rows, [c for c in columns if any(c in r for r in rows)], "No releases yet.")


def parse_version(text: str) -> int:
    try:
        return int(text.lower().removeprefix("v"))
    except ValueError as exc:
        raise CliError(f"{text!r} is not a release version (such as v3 or 3)") from exc


@click.command("rollback")
@app_option
@click.argument("version", required=False)
@json_option
@wait_option
def rollback(app: str | None, version: str | None, as_json: bool, no_wait: bool) -> None:
    """Roll back to an older release (default: the one before the newest).

    The rollback is itself a new release that runs the older one's slug and config.

    \b
    Examples:
      slipway rollback -a hello         # to the release before the newest
      slipway rollback -a hello v2
    """
    client = Client.from_environment()
    name = resolve_app(app)
    if version is None:
        history = client.get(f"/apps/{name}/releases")
        if len(history) < 2:
            raise CliError(f"{name} has no earlier release to roll back to")
        target = int(history[1]["version"])
    else:
        target = parse_version(version)
    release = client.post(f"/apps/{name}/rollback", {"version": target})
    if as_json:
        print_json(release)
    else:
        click.echo(f"Rolled back {name} to v{target}: now v{release.get('version')}.")
    if not no_wait:
        wait_until_live(client, name, int(release["version"]))
