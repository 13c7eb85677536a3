"""`slipway spaces ...`: create, list, checkpoint, fork, delete, attach and detach spaces."""

from __future__ import annotations

from typing import Any

import click

from slipway.cli.client import Client, CliError
from slipway.cli.common import app_option, resolve_app
from slipway.cli.output import json_option, print_fields, print_json, print_table

UNITS = ("B", "K", "M", "G", "T")


def human(size: Any) -> str:
    """Bytes as 0B, 512K, 1.5G: short enough for a table column."""
    if not isinstance(size, int):
        return "?"
    value = float(size)
    for unit in UNITS:
        if value < 1024 or unit == UNITS[-1]:
            shown = f"{value:.1f}".removesuffix(".0") if unit != "B" else str(int(value))
            return f"{shown}{unit}"
        value /= 1024
    return str(size)  # not reached: the last unit returns


def used_of_size(space: dict[str, Any]) -> str:
    return f"{human(space.get('used'))}/{human(space.get('size'))}"


def attached_to(space: dict[str, Any]) -> list[str]:
    return [f"{a['app']}:{a['slot']}" for a in space.get("attachments") or []]


def rolled(answer: dict[str, Any], app: str) -> str:
    release = answer.get("release")
    if release is None:
        return f"{app} has no release yet: its first deploy mounts it."
    return f"{app} rolls onto v{release} so its instances get the change."


@click.group("spaces", invoke_without_command=True)
@json_option
@click.pass_context
def spaces(ctx: click.Context, as_json: bool) -> None:
    """Persistent data: named, size-capped filesystems that you can checkpoint, fork and
    attach to apps (mounted at /spaces/SLOT/tree).

    \b
    Examples:
      slipway spaces                                   (or: slipway spaces:list)
      slipway spaces:create blog-data --size 1G
      slipway spaces:attach blog-data --slot data -a blog
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_spaces, as_json=as_json)


@spaces.command("list")
@json_option
def list_spaces(as_json: bool) -> None:
    """List your spaces: used/size, checkpoints and the apps they are attached to.

    \b
    Example:
      slipway spaces:list --json
    """
    rows = Client.from_environment().get("/spaces")
    if as_json:
        print_json(rows)
        return
    table = [
        {
            "name": row["name"],
            "used/size": used_of_size(row),
            "checkpoints": [c["name"] for c in row.get("checkpoints") or []],
            "attached": attached_to(row),
        }
        for row in rows
    ]
    columns = ["name", "used/size", "checkpoints", "attached"]
    print_table(table, columns, "You have no spaces yet: slipway spaces:create NAME --size 1G")


@spaces.command("create")
@click.argument("name")
@click.option("--size", help="The cap, such as 512M or 2G (at least 32M; default: 1G).")
@json_option
def create(name: str, size: str | None, as_json: bool) -> None:
    """Create an empty space NAME of --size.

    Writing past the size gives "No space left on device" inside the app.

    \b
    Example:
      slipway spaces:create blog-data --size 1G
    """
    body = {"name": name} if size is None else {"name": name, "size": size}
    space = Client.from_environment().post("/spaces", body)
    if as_json:
        print_json(space)
        return
    click.echo(f"Created space {space['name']} of {human(space['size'])}.")
    click.echo(f"Attach it with: slipway spaces:attach {space['name']} --slot SLOT -a APP")


@spaces.command("info")
@click.argument("name")
@json_option
def info(name: str, as_json: bool) -> None:
    """Show a space: size and use, origin, checkpoints and attachments.

    \b
    Example:
      slipway spaces:info blog-data
    """
    space = Client.from_environment().get(f"/spaces/{name}")
    if as_json:
        print_json(space)
        return
    shown = dict(space, used=human(space.get("used")), size=human(space.get("size")))
    shown["attached"] = attached_to(space)
    fields = ["name", "owner", "state", "used", "size", "origin", "attached", "created_at"]
    print_fields(shown, fields)
    if space.get("copies"):
        click.echo("(this platform's space provider copies the data to checkpoint and fork)")
    checkpoints = space.get("checkpoints") or []
    if checkpoints:
        click.echo()
        print_table(checkpoints, ["name", "created_at"], "")


@spaces.command("checkpoint")
@click.argument("name")
@click.argument("checkpoint")
def checkpoint(name: str, checkpoint: str) -> None:
    """Take a named, read-only CHECKPOINT of space NAME (the space stays live).

    \b
    Example:
      slipway spaces:checkpoint blog-data before-migration
      slipway spaces:fork blog-data@before-migration blog-data-old
    """
    made = Client.from_environment().post(f"/spaces/{name}/checkpoints", {"name": checkpoint})
    click.echo(f"Checkpointed {name} as {made['name']}.")


@spaces.command("fork")
@click.argument("source", metavar="SOURCE[@CHECKPOINT]")
@click.argument("new")
@json_option
def fork(source: str, new: str, as_json: bool) -> None:
    """Make a new writable space NEW from SOURCE as it is now, or from one of its checkpoints.

    \b
    Examples:
      slipway spaces:fork blog-data blog-data-staging
      slipway spaces:fork blog-data@before-migration blog-data-old
    """
    space = Client.from_environment().post("/spaces/fork", {"source": source, "name": new})
    if as_json:
        print_json(space)
        return
    click.echo(f"Created space {space['name']} ({space['origin']}).")


@spaces.command("delete")
@click.argument("name")
@click.option("--force", is_flag=True, help="Detach it from its apps first (they roll).")
@click.option("--confirm", metavar="NAME", help="The space's name, to skip the question.")
def delete(name: str, force: bool, confirm: str | None) -> None:
    """Delete space NAME with its checkpoints and data; refused while it is attached to an
    app, unless --force.

    \b
    Example:
      slipway spaces:delete blog-data-old --confirm blog-data-old
    """
    if confirm is None:
        click.echo(f"This deletes the space {name}, its checkpoints and its data for good.")
        confirm = click.prompt("Type the space's name to confirm", default="", show_default=False)
    if confirm != name:
        raise CliError(f"confirmation did not match {name!r}: nothing deleted")
    path = f"/spaces/{name}?force=1" if force else f"/spaces/{name}"
    answer = Client.from_environment().delete(path) or {}
    for attachment in answer.get("detached") or []:
        click.echo(f"Detached from {attachment['app']} (slot {attachment['slot']}).")
    click.echo(f"Deleted space {name}.")


@spaces.command("attach")
@click.argument("name")
@click.option(
    "--slot", required=True, metavar="SLOT", help="Mounted at /spaces/SLOT/tree, such as data."
)
@app_option
@click.option(
    "--process-types",
    metavar="TYPES",
    help="Comma-separated process types that mount it, such as web,worker (default: all).",
)
@json_option
def attach(name: str, slot: str, app: str | None, process_types: str | None, as_json: bool) -> None:
    """Attach space NAME to an app in --slot; its instances roll to mount it.

    The release phase and `slipway run` mount every attached space.

    \b
    Example:
      slipway spaces:attach blog-data --slot data -a blog
    """
    app_name = resolve_app(app)
    body: dict[str, Any] = {"app": app_name, "slot": slot}
    if process_types is not None:
        body["process_types"] = [p.strip() for p in process_types.split(",") if p.strip()]
    answer = Client.from_environment().post(f"/spaces/{name}/attach", body)
    if as_json:
        print_json(answer)
        return
    click.echo(f"Attached {name} to {app_name} at {answer['mount']}.")
    click.echo(rolled(answer, app_name))


@spaces.command("detach")
@click.option("--slot", required=True, metavar="SLOT", help="The slot to empty.")
@app_option
def detach(slot: str, app: str | None) -> None:
    """Detach the space in --slot from an app; its instances roll without it. The space and
    its data stay.

    \b
    Example:
      slipway spaces:detach --slot data -a blog
    """
    app_name = resolve_app(app)
    answer = Client.from_environment().delete(f"/apps/{app_name}/spaces/{slot}")
    click.echo(f"Detached {answer['space']} from {app_name} (slot {slot}).")
    click.echo(rolled(answer, app_name))
