"""`slipway run`: a one-off command in a fresh container of the app, exiting with its status."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
import requests

from slipway.cli.client import Client, CliError
from slipway.cli.common import app_option, resolve_app
from slipway.cli.terminal import TIMED_OUT_STATUS, run_with_terminal


@click.command(
    "run", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@app_option
@click.option(
    "--tty/--no-tty",
    default=None,
    help="Give the command a terminal (the default when run from one): for shells and other "
    "interactive programs. --no-tty streams plain output lines.",
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(app: str | None, tty: bool | None, command: tuple[str, ...]) -> None:
    """Run a command in a fresh container of the app's current release.

    The container has the app's config vars and code, but no traffic. slipway exits with the
    command's exit status. One word is run by bash (so pipes and $VARS work); several words are
    run as they are. From a terminal the command gets one of its own, so `slipway run bash` is
    an interactive shell (Ctrl-C, window size and colours work as locally); otherwise its
    output is printed line by line as it comes.

    \b
    Examples:
      slipway run -a hello bash
      slipway run -a hello python manage.py migrate
      slipway run -a hello 'echo $DATABASE_URL | cut -d@ -f2'
    """
    name = resolve_app(app)
    words: str | list[str] = command[0] if len(command) == 1 else list(command)
    client = Client.from_environment()
    if tty is None:
        tty = sys.stdin.isatty() and sys.stdout.isatty()
    if tty:
        sys.exit(run_with_terminal(client, name, words))
    response = client.request(
        "POST", f"/apps/{name}/run", json={"command": words}, stream=True, timeout=None
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
