"""`slipway server up|down|status|api|reconcile|collect`: the control plane on this host."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from slipway.config import get_settings
from slipway.host import control
from slipway.host.collect import collect_loop
from slipway.host.reconcile import reconcile_loop, reconcile_once
from slipway.runtime.base import RuntimeUnavailable
from slipway.services.errors import SlipwayError
from slipway.volumes.base import VolumeError


def _clear_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Show a failure as one sentence instead of a traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (SlipwayError, RuntimeUnavailable, VolumeError) as error:
            raise click.ClickException(str(error)) from error

    return wrapper


def _print_info(info: control.PlatformInfo) -> None:
    click.echo(f"       API and dashboard: {info.api_url}/")
    click.echo(
        f"       Apps (router):     http://<app>.{info.domain}/  or  {info.router_url}/<app>/"
    )
    click.echo(f"       Admin token:       {info.token or '(missing)'}")
    click.echo(f"                          (kept in {info.token_file}, mode 0600)")
    click.echo(f"       Logs:              {info.logs_dir}/")


def _print_next_step(info: control.PlatformInfo) -> None:
    click.echo("Next: create an app and deploy a directory to it:")
    click.echo(f"  export SLIPWAY_TOKEN=$(cat {info.token_file})")
    click.echo(
        f"  curl -H \"Authorization: Bearer $SLIPWAY_TOKEN\" -H 'Content-Type: application/json'"
        f' -d \'{{"name": "hello"}}\' {info.api_url}/api/v1/apps'
    )
    click.echo(
        '  tar -czf - -C ./my-app . | curl -H "Authorization: Bearer $SLIPWAY_TOKEN"'
        " -H 'Content-Type: application/gzip' --data-binary @-"
        f" {info.api_url}/api/v1/apps/hello/deploys"
    )


@click.command()
@_clear_errors
def up() -> None:
    """Start the platform (or check a running one): redis, nginx, the API process, the worker."""
    click.echo("-----> Starting the Slipway control plane")
    info = control.up(get_settings())
    click.echo("-----> Slipway is up")
    _print_info(info)
    _print_next_step(info)


@click.command()
@_clear_errors
def down() -> None:
    """Stop the platform. Apps' containers keep running; `up` reconciles them."""
    if control.down(get_settings()):
        click.echo("-----> Slipway is stopped (apps keep running; `slipway server up` resumes)")
    else:
        click.echo("-----> Slipway was not running")


@click.command()
@_clear_errors
def status() -> None:
    """Show each control-plane process and where the platform answers."""
    settings = get_settings()
    states = control.status(settings)
    if not states:
        click.echo("Slipway is not running (start it with `slipway server up`).")
        sys.exit(3)
    for state in states:
        pid = f"pid {state.pid}" if state.pid else ""
        click.echo(f"{state.name:<12} {state.state:<10} {pid}")
    _print_info(control.info(settings))
    if any(state.state != "RUNNING" for state in states):
        sys.exit(3)


@click.command()
def api() -> None:
    """Serve the API and the dashboard, with the reconciler, collector and sleeper beside them.

    `slipway server up` runs this under its supervisord. The process becomes
    ``python -m slipway.host.api_server`` (same pid), so gevent patches the standard library
    before anything imports it.
    """
    os.execv(sys.executable, [sys.executable, "-m", "slipway.host.api_server"])


@click.command()
@click.option("--loop", is_flag=True, help="Run a pass now and then every --interval seconds.")
@click.option("--interval", default=control.RECONCILE_INTERVAL, show_default=True, type=float)
@_clear_errors
def reconcile(loop: bool, interval: float) -> None:
    """Make Docker, volumes and nginx match the database (once, or as a loop)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = get_settings()
    if loop:
        reconcile_loop(settings, interval)
    else:
        reconcile_once(settings)


@click.command()
@_clear_errors
def collect() -> None:
    """Turn crash/OOM notifications and Docker events into app events (runs until stopped)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    collect_loop(get_settings())


def register_platform_commands(group: click.Group) -> None:
    """Add the platform commands (up, down, status, api, reconcile, collect) to `slipway server`."""
    for command in (up, down, status, api, reconcile, collect):
        group.add_command(command)
