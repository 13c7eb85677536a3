"""`slipway deploy`: upload the current directory, follow the build log, print the URL."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import click

from slipway.cli.client import Client, CliError
from slipway.cli.common import app_option, resolve_app
from slipway.cli.output import json_option, print_json
from slipway.cli.source import pack

FINAL_STATES = {"succeeded", "failed", "cancelled"}
POLL_INTERVAL = 1.0


def follow_deploy(client: Client, app: str, deploy_id: Any, timeout: float, quiet: bool) -> dict:
    """Print the deploy's log as it grows until the deploy ends; return the final deploy."""
    printed = 0
    deadline = time.monotonic() + timeout
    while True:
        seen = 0
        for line in client.lines(f"/apps/{app}/deploys/{deploy_id}/log"):
            seen += 1
            if seen > printed:  # a re-opened log starts from the top again
                printed = seen
                if not quiet:
                    click.echo(line)
        deploy = client.get(f"/apps/{app}/deploys/{deploy_id}")
        if deploy.get("state") in FINAL_STATES:
            return deploy
        if time.monotonic() > deadline:
            raise CliError(
                f"deploy {deploy_id} is still {deploy.get('state')} after {int(timeout)}s; "
                f"check it later with `slipway apps:info`"
            )
        time.sleep(POLL_INTERVAL)


@click.command("deploy")
@app_option
@click.option(
    "-d",
    "--dir",
    "directory",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=".",
    help="The directory to deploy (default: the current one).",
)
@click.option("--no-follow", is_flag=True, help="Upload and return without waiting.")
@click.option("--timeout", default=1800, show_default=True, help="Seconds to wait for the end.")
@json_option
def deploy(app: str | None, directory: Path, no_follow: bool, timeout: int, as_json: bool) -> None:
    """Deploy the current directory as a tarball (honouring .gitignore and .slipwayignore).

    Follows the build and release log live; exits non-zero if the deploy fails.

    \b
    Example:
      slipway deploy -a hello
    """
    name = resolve_app(app)
    client = Client.from_environment()
    with tempfile.TemporaryFile() as archive:
        count = pack(directory.resolve(), archive)
        size = archive.tell()
        archive.seek(0)
        if not as_json:
            click.echo(f"-----> Uploading {count} files ({size // 1024 + 1} KB) to {name}")
        started = client.post(
            f"/apps/{name}/deploys",
            data=archive,
            headers={"Content-Type": "application/gzip", "Content-Length": str(size)},
        )
    if no_follow:
        print_json(started) if as_json else click.echo(f"Deploy {started['id']} queued.")
        return
    final = follow_deploy(client, name, started["id"], timeout, quiet=as_json)
    if as_json:
        print_json(final)
    if final["state"] in ("failed", "cancelled"):
        reason = final.get("error") or "see the log above"
        raise CliError(f"deploy {final['id']} {final['state']}: {reason}")
    if not as_json:
        url = client.get(f"/apps/{name}").get("url")
        click.echo(f"-----> Deployed {name}: {url}")
