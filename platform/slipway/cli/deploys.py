"""`slipway deploys` and `slipway deploys:cancel`: an app's deploys, and stopping one."""

from __future__ import annotations

import click

from slipway.cli.client import Client, CliError
from slipway.cli.common import app_option, resolve_app
from slipway.cli.deploy import FINAL_STATES
from slipway.cli.output import json_option, print_json, print_table


@click.group("deploys", invoke_without_command=True)
@app_option
@json_option
@click.pass_context
def deploys(ctx: click.Context, app: str | None, as_json: bool) -> None:
    """List an app's deploys, newest first, or cancel one.

    \b
    Examples:
      slipway deploys -a hello
      slipway deploys:cancel -a hello       (the running or queued one)
    """
    if ctx.invoked_subcommand is not None:
        return
    rows = Client.from_environment().get(f"/apps/{resolve_app(app)}/deploys")
    if as_json:
        print_json(rows)
        return
    columns = ["id", "state", "source_kind", "created_at", "error"]
    print_table(rows, columns, "No deploys yet.")


@deploys.command("cancel")
@app_option
@click.argument("deploy_id", metavar="[ID]", required=False, type=int)
@json_option
def cancel(app: str | None, deploy_id: int | None, as_json: bool) -> None:
    """Cancel a queued or running deploy (default: the app's newest unfinished one).

    A queued deploy never starts; a building one has its build stopped; a starting one has its
    new instances removed. The release that was live keeps serving.

    \b
    Examples:
      slipway deploys:cancel -a hello
      slipway deploys:cancel -a hello 42
    """
    client = Client.from_environment()
    name = resolve_app(app)
    if deploy_id is None:
        running = [d for d in client.get(f"/apps/{name}/deploys") if d["state"] not in FINAL_STATES]
        if not running:
            raise CliError(f"{name} has no queued or running deploy to cancel")
        deploy_id = running[0]["id"]
    cancelled = client.post(f"/apps/{name}/deploys/{deploy_id}/cancel")
    if as_json:
        print_json(cancelled)
    else:
        click.echo(f"-----> Deploy {deploy_id} of {name} is cancelled")
