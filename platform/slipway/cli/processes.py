"""`slipway ps`, `slipway scale`, `slipway logs`, `slipway open` and `slipway url`."""

from __future__ import annotations

import click

from slipway.cli.apps import instance_columns
from slipway.cli.client import Client, CliError
from slipway.cli.common import app_option, resolve_app
from slipway.cli.output import json_option, print_json, print_table


@click.command("ps")
@app_option
@json_option
def ps(app: str | None, as_json: bool) -> None:
    """List an app's running instances and its formation.

    \b
    Example:
      slipway ps -a hello
    """
    data = Client.from_environment().get(f"/apps/{resolve_app(app)}")
    instances = data.get("instances") or []
    if as_json:
        print_json({"formation": data.get("formation"), "instances": instances})
        return
    formation = data.get("formation") or {}
    if formation:
        click.echo("Formation: " + " ".join(f"{k}={v}" for k, v in sorted(formation.items())))
    print_table(instances, instance_columns(instances) if instances else [], "No instances.")


def parse_formation(pairs: tuple[str, ...]) -> dict[str, int]:
    """``("web=2", "worker=0")`` as ``{"web": 2, "worker": 0}``."""
    formation = {}
    for pair in pairs:
        kind, sep, count = pair.partition("=")
        if not sep or not kind or not count.isdigit():
            raise CliError(f"{pair!r} is not TYPE=COUNT (such as web=2)")
        formation[kind] = int(count)
    return formation


@click.command("scale")
@app_option
@click.argument("pairs", nargs=-1, required=True, metavar="TYPE=COUNT...")
@json_option
def scale(app: str | None, pairs: tuple[str, ...], as_json: bool) -> None:
    """Set how many instances of each process type run.

    \b
    Example:
      slipway scale -a hello web=2 worker=1
    """
    result = Client.from_environment().post(
        f"/apps/{resolve_app(app)}/scale", parse_formation(pairs)
    )
    if as_json:
        print_json(result)
        return
    formation = result.get("formation", result) if isinstance(result, dict) else {}
    click.echo("Scaled: " + " ".join(f"{k}={v}" for k, v in sorted(formation.items())))


@click.command("logs")
@app_option
@click.option("-n", "--tail", "tail", type=int, default=100, show_default=True, help="Lines.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines as they come.")
def logs(app: str | None, tail: int, follow: bool) -> None:
    """Print an app's logs (all its instances); --follow keeps streaming.

    \b
    Examples:
      slipway logs -a hello --tail 50
      slipway logs -a hello --follow
    """
    params = {"tail": tail, "follow": "1" if follow else "0"}
    try:
        for line in Client.from_environment().lines(f"/apps/{resolve_app(app)}/logs", params):
            click.echo(line)
    except KeyboardInterrupt:  # Ctrl-C is how people stop --follow
        pass


def app_url(app: str | None) -> str:
    url = Client.from_environment().get(f"/apps/{resolve_app(app)}").get("url")
    if not url:
        raise CliError("the app has no URL yet")
    return str(url)


@click.command("url")
@app_option
def url(app: str | None) -> None:
    """Print the app's URL.

    \b
    Example:
      curl "$(slipway url -a hello)"
    """
    click.echo(app_url(app))


@click.command("open")
@app_option
def open_(app: str | None) -> None:
    """Open the app's URL in a browser.

    \b
    Example:
      slipway open -a hello
    """
    target = app_url(app)
    click.echo(target)
    click.launch(target)
