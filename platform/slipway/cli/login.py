"""`slipway login` and `slipway logout`: the API URL and token the other commands use."""

from __future__ import annotations

import click

from slipway.cli.client import Client, config_path, normalise_url, save_login

DEFAULT_URL = "http://127.0.0.1:7000"


@click.command("login")
@click.option("--url", help=f"The API's URL (asked when missing; e.g. {DEFAULT_URL}).")
@click.option("--token", help="Your API token (asked when missing, without echo).")
def login(url: str | None, token: str | None) -> None:
    """Check an API URL and token, then store them (mode 0600) for the other commands.

    SLIPWAY_URL and SLIPWAY_TOKEN, when set, win over the stored ones.

    \b
    Example:
      slipway login --url http://127.0.0.1:7000 --token "$(cat /var/lib/slipway/admin-token)"
    """
    url = normalise_url(url or click.prompt("API URL", default=DEFAULT_URL))
    token = (token or click.prompt("API token", hide_input=True)).strip()
    Client(url, token).get("/apps")  # refused tokens and unreachable URLs fail here
    path = save_login(url, token)
    click.echo(f"Logged in to {url} (saved in {path}).")


@click.command("logout")
def logout() -> None:
    """Forget the stored URL and token.

    \b
    Example:
      slipway logout
    """
    config_path().unlink(missing_ok=True)
    click.echo("Logged out.")
