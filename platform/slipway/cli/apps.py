"""`slipway apps ...` and `slipway git:remote`: create, list, inspect and destroy apps."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import click

from slipway.cli.client import Client, CliError
from slipway.cli.common import REMOTE_NAME, app_option, git, resolve_app
from slipway.cli.output import json_option, print_fields, print_json, print_table
from slipway.cli.rollout import wait_option, wait_until_live
from slipway.config import format_duration

# The server's models.app.DEPLOY_STRATEGIES (the CLI does not import the models: it stays light).
DEPLOY_STRATEGIES = ("rolling", "stop-first")


def release_version(app: dict[str, Any]) -> Any:
    """The current release as ``v3`` whether the API gives a number or an object."""
    release = app.get("release")
    if isinstance(release, dict):
        release = release.get("version")
    return f"v{release}" if release is not None else None


def sleep_after_text(app: dict[str, Any]) -> str:
    """``15m``, ``never``, with ``(platform default)`` when the app follows the platform's."""
    text = format_duration(int(app.get("sleep_after") or 0))
    return f"{text} (platform default)" if app.get("sleep_after_source") == "platform" else text


def sleep_fields(app: dict[str, Any]) -> dict[str, Any]:
    """The app's sleep settings as `apps:info` shows them (absent from an older API's answer)."""
    if "sleep_after" not in app:
        return {}
    return {"sleep_after": sleep_after_text(app), "sleep_types": app.get("sleep_types") or None}


def git_url(client: Client, app: str) -> str:
    return f"{client.url}/git/{app}.git"


def add_git_remote(client: Client, app: str, name: str = REMOTE_NAME) -> str:
    """Point the git remote ``name`` of the current repository at the app; return the URL."""
    url = git_url(client, app)
    inside = git(["rev-parse", "--is-inside-work-tree"])
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        raise CliError("this directory is not a git repository: run `git init` first")
    verb = "set-url" if git(["remote", "get-url", name]).returncode == 0 else "add"
    result = git(["remote", verb, name, url])
    if result.returncode != 0:
        raise CliError(f"git could not set the remote: {result.stderr.strip()}")
    # git asks `slipway git:credential` for the token, so it never lands in .git/config.
    git(["config", f"credential.{client.url}.helper", credential_helper()])
    return url


def credential_helper() -> str:
    """The helper command git runs: this very `slipway`, so it works off PATH too."""
    program = Path(sys.argv[0])
    command = (
        str(program.resolve()) if program.name == "slipway" and program.is_file() else "slipway"
    )
    return f"!{shlex.quote(command)} git:credential"


@click.group("apps", invoke_without_command=True)
@json_option
@click.pass_context
def apps(ctx: click.Context, as_json: bool) -> None:
    """List your apps, or create, inspect and destroy one.

    \b
    Examples:
      slipway apps
      slipway apps create hello      (or: slipway apps:create hello)
      slipway apps:fork hello hello-preview
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_apps, as_json=as_json)


@apps.command("list")
@json_option
def list_apps(as_json: bool) -> None:
    """List your apps.

    \b
    Example:
      slipway apps:list --json
    """
    rows = Client.from_environment().get("/apps")
    if as_json:
        print_json(rows)
        return
    for row in rows:
        row["release"] = release_version(row)
    print_table(rows, ["name", "state", "release", "url"], "You have no apps yet.")


@apps.command("create")
@click.argument("name")
@click.option("--no-remote", is_flag=True, help="Do not add the `slipway` git remote.")
@json_option
def create(name: str, no_remote: bool, as_json: bool) -> None:
    """Create an app; in a git repository, also add the `slipway` remote.

    \b
    Example:
      slipway apps:create hello && git push slipway main
    """
    client = Client.from_environment()
    app = client.post("/apps", {"name": name})
    remote = None
    if not no_remote and git(["rev-parse", "--is-inside-work-tree"]).returncode == 0:
        remote = add_git_remote(client, name)
    if as_json:
        print_json(app)
        return
    click.echo(f"Created {name}: {app.get('url') or ''}".rstrip())
    if remote:
        click.echo(f"Git remote {REMOTE_NAME} -> {remote}")


@apps.command("info")
@app_option
@json_option
def info(app: str | None, as_json: bool) -> None:
    """Show an app: URL, state (sleeping, running...), release, settings and instances.

    \b
    Example:
      slipway apps:info -a hello
    """
    data = Client.from_environment().get(f"/apps/{resolve_app(app)}")
    if as_json:
        print_json(data)
        return
    shown = dict(data, release=release_version(data), **sleep_fields(data))
    fields = ["name", "url", "state", "release", "deploy_branch", "deploy_strategy"]
    fields += ["sleep_after", "sleep_types", "created_at"]
    print_fields(shown, fields)
    instances = data.get("instances") or []
    if instances:
        click.echo()
        print_table(instances, instance_columns(instances), "")


def instance_columns(instances: list[dict[str, Any]]) -> list[str]:
    wanted = ["process_type", "index", "state", "release", "port", "container"]
    return [c for c in wanted if any(c in i for i in instances)] or sorted(instances[0])


@apps.command("update")
@app_option
@click.option("--memory", metavar="SIZE", help="Memory limit per instance, such as 256M or 1G.")
@click.option(
    "--health-check",
    metavar="PATH",
    help="Path that must answer 2xx before traffic switches; 'none' to only wait for the port.",
)
@click.option("--deploy-branch", metavar="BRANCH", help="The branch `git push` deploys.")
@click.option(
    "--deploy-strategy",
    type=click.Choice(DEPLOY_STRATEGIES),
    help="rolling: new instances start next to the old ones (no gap); "
    "stop-first: the old ones stop first (a short gap, never two writers).",
)
@click.option(
    "--sleep-after",
    metavar="DURATION",
    help="Put the app to sleep after this long without a request (such as 15m, 90s or 2h, "
    "at least 10s); 'never' keeps it awake; 'default' follows the platform's setting.",
)
@click.option(
    "--sleep-types",
    metavar="TYPES",
    help="Non-web process types that sleep with web, comma separated (such as worker,clock); "
    "'' for none. An app running other types never sleeps.",
)
@json_option
def update(
    app: str | None,
    memory: str | None,
    health_check: str | None,
    deploy_branch: str | None,
    deploy_strategy: str | None,
    sleep_after: str | None,
    sleep_types: str | None,
    as_json: bool,
) -> None:
    """Change an app's settings. A new memory limit applies to running instances at once.

    \b
    Examples:
      slipway apps:update -a hello --memory 256M
      slipway apps:update -a hello --health-check /health --deploy-branch production
      slipway apps:update -a hello --deploy-strategy stop-first
      slipway apps:update -a hello --sleep-after 15m       # sleeps when idle, wakes on a request
      slipway apps:update -a hello --sleep-after never     # always awake
      slipway apps:update -a hello --sleep-types worker    # its worker sleeps too
    """
    changes: dict[str, Any] = {}
    if memory is not None:
        changes["memory"] = memory
    if health_check is not None:
        changes["health_check_path"] = None if health_check.lower() == "none" else health_check
    if deploy_branch is not None:
        changes["deploy_branch"] = deploy_branch
    if deploy_strategy is not None:
        changes["deploy_strategy"] = deploy_strategy
    if sleep_after is not None:
        default = sleep_after.strip().lower() == "default"
        changes["sleep_after"] = None if default else sleep_after
    if sleep_types is not None:
        changes["sleep_types"] = [kind.strip() for kind in sleep_types.split(",") if kind.strip()]
    if not changes:
        raise CliError(
            "nothing to change: give --memory, --health-check, --deploy-branch, "
            "--deploy-strategy, --sleep-after or --sleep-types"
        )
    data = Client.from_environment().patch(f"/apps/{resolve_app(app)}", changes)
    if as_json:
        print_json(data)
        return
    fields = ["name", "memory", "health_check_path", "deploy_branch", "deploy_strategy"]
    print_fields(dict(data, **sleep_fields(data)), [*fields, "sleep_after", "sleep_types"])


@apps.command("destroy")
@app_option
@click.option("--confirm", metavar="NAME", help="The app's name, to skip the question.")
@click.option(
    "--delete-spaces",
    is_flag=True,
    help="Delete the spaces attached to the app too (refused if one is another app's as well).",
)
def destroy(app: str | None, confirm: str | None, delete_spaces: bool) -> None:
    """Destroy an app: its instances, volumes, routes and releases. Its spaces are kept
    unless --delete-spaces.

    \b
    Examples:
      slipway apps:destroy -a hello --confirm hello
      slipway apps:destroy -a hello-preview --confirm hello-preview --delete-spaces
    """
    name = resolve_app(app)
    if confirm is None:
        spaces = "its spaces too" if delete_spaces else "not its spaces"
        click.echo(f"This destroys {name} and everything it has ({spaces}). It cannot be undone.")
        confirm = click.prompt("Type the app's name to confirm", default="", show_default=False)
    if confirm != name:
        raise CliError(f"confirmation did not match {name!r}: nothing destroyed")
    params = {"delete_spaces": "1"} if delete_spaces else None
    done = Client.from_environment().delete(f"/apps/{name}", params=params) or {}
    click.echo(f"Destroyed {name}.")
    if done.get("spaces_deleted"):
        click.echo(f"Deleted spaces: {', '.join(done['spaces_deleted'])}.")
    kept = done.get("spaces_kept") or []
    if kept:
        click.echo(
            f"Kept spaces: {', '.join(kept)} (delete one with `slipway spaces:delete NAME`)."
        )


@apps.command("fork")
@click.argument("source")
@click.argument("new")
@json_option
@wait_option
def fork(source: str, new: str, as_json: bool, no_wait: bool) -> None:
    """Make a new app on SOURCE's current release and settings, with its spaces forked.

    Each space attached to SOURCE is forked as it is now (in constant time on btrfs) into
    NEW-SLOT and attached to NEW in the same slot. Waits until NEW serves (--no-wait returns
    at once).

    \b
    Example:
      slipway apps:fork hello hello-preview
    """
    client = Client.from_environment()
    made = client.post(f"/apps/{source}/fork", {"name": new})
    if as_json:
        print_json(made)
    else:
        origin = made.get("forked_from") or {}
        click.echo(f"Forked {source} v{origin.get('version')} into {new}.")
        for space in made.get("forked_spaces") or []:
            click.echo(
                f"Space {space['source']} forked into {space['space']} (slot {space['slot']})."
            )
    if not no_wait:
        wait_until_live(client, new, int(made.get("forked_release") or 1))
    if not as_json:
        click.echo(f"{new}: {made.get('url') or ''}".rstrip())


@click.command("git:remote")
@app_option
@click.option("-r", "--remote", default=REMOTE_NAME, show_default=True, help="The remote's name.")
def git_remote(app: str | None, remote: str) -> None:
    """Add (or update) a git remote that deploys the app on `git push`.

    \b
    Example:
      slipway git:remote -a hello && git push slipway main
    """
    client = Client.from_environment()
    name = resolve_app(app)
    client.get(f"/apps/{name}")  # fails clearly when the app does not exist
    url = add_git_remote(client, name, remote)
    click.echo(f"Git remote {remote} -> {url}")


@click.command("git:credential", hidden=True)
@click.argument("operation")
def git_credential(operation: str) -> None:
    """A git credential helper: answers `get` with the stored token for the Slipway API.

    \b
    Example (git runs it; `slipway git:remote` sets it up):
      git config credential.http://127.0.0.1:7000.helper '!slipway git:credential'
    """
    if operation != "get":
        return  # store/erase: the token lives in the Slipway login, not in git
    asked = dict(line.partition("=")[::2] for line in sys.stdin.read().splitlines() if "=" in line)
    client = Client.from_environment()
    scheme, _, host = client.url.partition("://")
    if asked.get("protocol") == scheme and asked.get("host") == host.split("/")[0]:
        click.echo(f"username=slipway\npassword={client.token}")
