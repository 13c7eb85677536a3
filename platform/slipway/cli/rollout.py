"""Waiting for a new release to go live, after a config change or a rollback.

The API answers as soon as the release is made; the instances roll in the background. People
expect `config:set` to be done when it returns (Heroku's does), so the CLI waits until the
release serves, or says why it did not.
"""

from __future__ import annotations

import time
from typing import Any

import click

from slipway.cli.client import Client, CliError

POLL_INTERVAL = 1.0  # seconds between looks at the app
DEFAULT_TIMEOUT = 300

wait_option = click.option(
    "--no-wait", is_flag=True, help="Return at once instead of waiting for the release to serve."
)


def wait_for_newest(client: Client, app: str) -> None:
    """Wait for the app's newest release to serve; nothing to wait for before the first deploy."""
    history = client.get(f"/apps/{app}/releases")
    if history:
        wait_until_live(client, app, int(history[0]["version"]))


def _failure(client: Client, app: str, version: int) -> str | None:
    events = client.get(f"/apps/{app}/events", params={"type": "deploy_failed", "limit": 20})
    for event in events if isinstance(events, list) else []:
        data: dict[str, Any] = event.get("data") or {}
        if data.get("version") == version:
            return str(event.get("message") or f"v{version} was not rolled out")
    return None


def wait_until_live(
    client: Client, app: str, version: int, timeout: float = DEFAULT_TIMEOUT
) -> None:
    """Return once ``version`` is the app's serving release; CliError if its roll failed."""
    deadline = time.monotonic() + timeout
    click.echo(f"Waiting for v{version} to serve...", err=True)
    while True:
        view = client.get(f"/apps/{app}")
        current = (view.get("release") or {}).get("version")
        if isinstance(current, int) and current >= version:
            click.echo(f"v{version} is live: {view.get('url', '')}", err=True)
            return
        failure = _failure(client, app, version)
        if failure:
            raise CliError(failure)
        if time.monotonic() > deadline:
            raise CliError(
                f"v{version} is not serving after {int(timeout)}s; "
                f"see `slipway events -a {app}` and `slipway logs -a {app}`"
            )
        time.sleep(POLL_INTERVAL)
