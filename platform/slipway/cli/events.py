"""`slipway events`: what happened to an app (crashes, OOMs, deploys), newest first."""

from __future__ import annotations

import click

from slipway.cli.client import Client
from slipway.cli.common import app_option, resolve_app
from slipway.cli.output import json_option, print_json, print_table

EVENT_COLUMNS = ["id", "created_at", "type", "message"]


@click.command("events")
@app_option
@click.option(
    "-n", "--limit", type=click.IntRange(1, 1000), default=20, show_default=True, help="Events."
)
@click.option("-t", "--type", "types", metavar="TYPE[,TYPE]", help="Only these types (crash,oom).")
@json_option
def events(app: str | None, limit: int, types: str | None, as_json: bool) -> None:
    """List an app's events: crash, oom, crash_loop, deploy_succeeded, deploy_failed, released.

    \b
    Examples:
      slipway events -a hello
      slipway events -a hello --limit 100 --type crash,oom
      slipway events -a hello --json | jq '.[0]'
    """
    params: dict[str, str | int] = {"limit": limit}
    if types:
        params["type"] = types
    rows = Client.from_environment().get(f"/apps/{resolve_app(app)}/events", params=params)
    if as_json:
        print_json(rows)
        return
    print_table(rows, EVENT_COLUMNS, "No events.")
