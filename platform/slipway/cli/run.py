"""`slipway run`: a one-off command in a fresh container of the app, exiting with its status."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
import requests

from slipway.cli.client import Client, CliError
from slipway.cli.common import app_option, resolve_app

TIMED_OUT_STATUS = 124  # what timeout(1) exits with


@click.command(
    "run", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@app_option
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(app: str | None, command: tuple[str, ...]) -> None:
    """Run a command in a fresh container of the app's current release.

    The container has the app's config vars and code, but no traffic. Its output is printed as
    it comes, and slipway exits with the command's exit status. One word is run by bash (so
    pipes and $VARS work); several words are run as they are.

    \b
    Examples:
      slipway run -a hello python manage.py migrate
      slipway run -a hello 'echo $DATABASE_URL | cut -d@ -f2'
    """
    body = {"command": command[0] if len(command) == 1 else list(command)}
    client = Client.from_environment()
    response = client.request(
        "POST", f"/apps/{resolve_app(app)}/run", json=body, stream=True, timeout=None
    )
    with response:
        status = print_stream(response)
    sys.exit(status)


def print_stream(response: requests.Response) -> int:
    """Print the command's output lines; its exit status (from the last line of the stream)."""
    try:
        for raw in response.iter_lines():
            if not raw:
                continue
            status = _handle(json.loads(raw))
            if status is not None:
                return status
    except requests.RequestException as exc:
        raise CliError(f"the connection broke while the command ran: {exc}") from exc
    except ValueError as exc:
        raise CliError("the API answered something that is not JSON lines") from exc
    raise CliError("the stream ended before the command's exit status came")


def _handle(message: dict[str, Any]) -> int | None:
    """Print one message of the stream; the exit status when it is the last one."""
    if "line" in message:
        click.echo(message["line"])
    elif "info" in message:
        click.echo(message["info"], err=True)
    elif "error" in message:
        raise CliError(str(message["error"]))
    elif "exit_status" in message:
        if message.get("timed_out"):
            click.echo("The command ran past the time limit and was stopped.", err=True)
            return TIMED_OUT_STATUS
        return int(message["exit_status"])
    return None
