"""`slipway ps` (and ps:sleep, ps:wake), `slipway scale`, `slipway logs`, `slipway open` and
`slipway url`."""

from __future__ import annotations

from typing import Any

import click

from slipway.cli.client import Client, CliError
from slipway.cli.common import app_option, resolve_app
from slipway.cli.output import json_option, print_json, print_table
from slipway.config import format_duration

PROCESS_COLUMNS = ["name", "state", "pid", "uptime", "release", "instance_state"]


@click.group("ps", invoke_without_command=True)
@app_option
@json_option
@click.pass_context
def ps(ctx: click.Context, app: str | None, as_json: bool) -> None:
    """List an app's processes: supervisor state, pid and uptime of each instance, and
    whether the app sleeps.

    \b
    Examples:
      slipway ps -a hello
      slipway ps:restart web -a hello      # every web instance
      slipway ps:stop web.2 -a hello       # one instance
      slipway ps:sleep -a hello            # stop its web instances until the next request
    """
    if ctx.invoked_subcommand is not None:
        return
    data = Client.from_environment().get(f"/apps/{resolve_app(app)}/processes")
    processes = data.get("processes") or []
    if as_json:
        print_json(data)
        return
    formation = data.get("formation") or {}
    if formation:
        click.echo("Formation: " + " ".join(f"{k}={v}" for k, v in sorted(formation.items())))
    sleep_line = sleep_summary(data)
    if sleep_line:
        click.echo(sleep_line)
    print_table(processes, PROCESS_COLUMNS, "No processes.")


def sleep_summary(data: dict[str, Any]) -> str:
    """One line on sleep: asleep and how it wakes, or when it sleeps; empty if it never does."""
    others = data.get("sleep_types") or []
    if data.get("sleeping"):
        kinds = ", ".join(["web", *others])
        return f"State: sleeping ({kinds} stopped); the next request wakes it."
    after = int(data.get("sleep_after") or 0)
    if after <= 0:
        return ""
    with_types = f" (web with {', '.join(others)})" if others else ""
    return f"Sleeps after {format_duration(after)} without a request{with_types}."


def control_processes(app: str | None, target: str | None, action: str) -> None:
    """POST the action for ``web`` (all its instances), ``web.2`` (one), or every type."""
    client = Client.from_environment()
    name = resolve_app(app)
    if target:
        process_type, _, index = target.partition(".")
        targets = [(process_type, {"instance": index} if index else {})]
    else:
        listed = client.get(f"/apps/{name}/processes").get("processes") or []
        targets = [(t, {}) for t in sorted({str(p["process_type"]) for p in listed})]
        if not targets:
            raise CliError(f"{name} has no processes to {action}")
    for process_type, body in targets:
        result = client.post(f"/apps/{name}/processes/{process_type}/{action}", body)
        for process in result.get("processes") or []:
            click.echo(f"{process['name']}: {process['state']}")


def _control_command(action: str, summary: str) -> click.Command:
    help_text = (
        f"{summary}\n\nTARGET is a process type (web) or one instance (web.2); without it,"
        f" every process.\n\n\b\nExamples:\n  slipway ps:{action} web -a hello\n"
        f"  slipway ps:{action} web.2 -a hello"
    )

    @click.command(action, help=help_text)
    @app_option
    @click.argument("target", required=False)
    def command(app: str | None, target: str | None) -> None:
        control_processes(app, target, action)

    return command


for _action, _summary in (
    ("restart", "Restart processes (a new pid; the instance and its volume stay)."),
    ("stop", "Stop processes; the instances stay, out of the router, until ps:start."),
    ("start", "Start stopped processes again."),
):
    ps.add_command(_control_command(_action, _summary))


@ps.command("sleep")
@app_option
@json_option
def sleep(app: str | None, as_json: bool) -> None:
    """Put an app to sleep now: its web instances (and those of its --sleep-types) stop;
    releases, config, volumes and spaces stay. The next request wakes it.

    Refused while a deploy of the app runs, and for an app running process types that do not
    sleep (list them with `slipway apps:update --sleep-types`).

    \b
    Examples:
      slipway ps:sleep -a hello
      slipway apps:update -a hello --sleep-after 15m   # sleep by itself when idle
    """
    name = resolve_app(app)
    data = Client.from_environment().post(f"/apps/{name}/sleep")
    if as_json:
        print_json(data)
        return
    click.echo(f"{name} is sleeping: the next request wakes it (or `slipway ps:wake -a {name}`).")


@ps.command("wake")
@app_option
@json_option
def wake(app: str | None, as_json: bool) -> None:
    """Wake a sleeping app now, as its next request would, and wait until its web instances
    are live. An app that is awake already stays as it is.

    \b
    Example:
      slipway ps:wake -a hello
    """
    name = resolve_app(app)
    data = Client.from_environment().post(f"/apps/{name}/wake")
    if as_json:
        print_json(data)
        return
    live = [i for i in data.get("instances") or [] if i.get("state") == "live"]
    labels = ", ".join(f"{i['process_type']}.{i['index']}" for i in live) or "no instance"
    click.echo(f"{name} is awake: {labels} live.")


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
            if line:  # empty lines are the server's keepalives; log lines carry a prefix
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
