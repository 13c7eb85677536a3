"""`slipway spaces:backup`, `spaces:restore` and `spaces:backups`: a space's data as one file."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO, Any

import click
import requests

from slipway.cli.client import Client, CliError
from slipway.cli.output import json_option, print_json, print_table

CHUNK = 1024**2
PROGRESS_FROM = 32 * 1024**2  # uploads smaller than this finish before progress would help
TRAILER_MAGIC = (0x184D2A51).to_bytes(4, "little")
TRAILER_LENGTH = 72
BACKUP_COLUMNS = ["id", "file", "size", "sha256", "scheduled", "created_at"]


@click.command("backup")
@click.argument("name")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE."
)
@click.option("--id", "backup_id", type=int, help="A kept backup (see spaces:backups) instead.")
def backup(name: str, output: Path | None, backup_id: int | None) -> None:
    """Stream a fresh backup of space NAME (zstd, with a checksum) to stdout or --output.

    \b
    Examples:
      slipway spaces:backup blog-data > blog-data.backup.tar.zst
      slipway spaces:backup blog-data --output blog-data.backup.tar.zst
      slipway spaces:backup blog-data --id 12 > kept.backup.tar.zst
    """
    if output is None and sys.stdout.isatty():
        raise CliError("a backup is binary: redirect it to a file (> FILE) or use --output FILE")
    path = f"/spaces/backups/{backup_id}" if backup_id else f"/spaces/{name}/backup"
    client = Client.from_environment()
    with client.request("GET", path, stream=True, timeout=None) as response:
        if output is None:
            _save(response, sys.stdout.buffer, client)
            return
        partial = output.with_name(output.name + ".part")
        try:
            with partial.open("wb") as out:
                _save(response, out, client)
            os.replace(partial, output)
        finally:
            partial.unlink(missing_ok=True)
    click.echo(f"Backup of {name} written to {output}.", err=True)


def _save(response: requests.Response, out: IO[bytes], client: Client) -> None:
    """Copy the body; a body that ends without the checksum trailer was cut short."""
    tail = b""
    try:
        for chunk in response.iter_content(CHUNK):
            out.write(chunk)
            tail = (tail + chunk)[-TRAILER_LENGTH:]
    except requests.RequestException as exc:
        raise CliError(f"the connection to {client.url} broke during the backup: {exc}") from exc
    out.flush()
    if len(tail) < TRAILER_LENGTH or tail[:4] != TRAILER_MAGIC:
        raise CliError("the backup stream ended early: the file is incomplete (see the API log)")


@click.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("new")
@click.option("--size", help="The new space's size, such as 2G (default: the backup's).")
@json_option
def restore(file: Path, new: str, size: str | None, as_json: bool) -> None:
    """Restore a backup FILE into a new space NEW (checked before anything is made).

    An existing space is never touched; attach the new one with spaces:attach.

    \b
    Example:
      slipway spaces:restore blog-data.backup.tar.zst blog-data-restored --size 2G
    """
    client = Client.from_environment()
    total = file.stat().st_size
    params = {"name": new} | ({"size": size} if size else {})
    with file.open("rb") as source:
        body: Any = source
        if total >= PROGRESS_FROM and not as_json:
            body = _Progress(source, total)
        space = client.post(
            "/spaces/restore",
            data=body,
            params=params,
            timeout=None,
            headers={"Content-Type": "application/zstd"},
        )
    if as_json:
        print_json(space)
        return
    click.echo(f"Restored {file.name} into the new space {space['name']} ({space['size']} bytes).")
    click.echo(f"Attach it with: slipway spaces:attach {space['name']} --slot SLOT -a APP")


class _Progress:
    """The file, read by requests as the upload goes, with a percentage on stderr."""

    def __init__(self, source: IO[bytes], total: int) -> None:
        self.source, self.total, self.sent, self.shown = source, total, 0, -1

    def __len__(self) -> int:
        return self.total

    def read(self, size: int = -1) -> bytes:
        chunk = self.source.read(size)
        self.sent += len(chunk)
        percent = self.sent * 100 // max(self.total, 1)
        if percent != self.shown:
            self.shown = percent
            done = " checking and unpacking..." if percent >= 100 else ""
            click.echo(f"\rUploading: {percent}%{done}", nl=bool(done), err=True)
        return chunk


@click.command("backups")
@click.argument("name")
@json_option
def backups(name: str, as_json: bool) -> None:
    """List the backups the platform keeps of space NAME (also after it was deleted).

    \b
    Example:
      slipway spaces:backups blog-data
      slipway spaces:backup blog-data --id 12 > kept.backup.tar.zst
    """
    rows = Client.from_environment().get(f"/spaces/{name}/backups")
    if as_json:
        print_json(rows)
        return
    for row in rows:
        row["sha256"] = row["sha256"][:12]
    print_table(rows, BACKUP_COLUMNS, f"No backups of {name} are kept.")


# Added to the `spaces` group, so they answer as spaces:backup, spaces:restore, spaces:backups.
BACKUP_COMMANDS = (backup, restore, backups)
