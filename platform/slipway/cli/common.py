"""What most commands share: the ``--app`` option and finding the app from the git remote."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from slipway.cli.client import CliError

F = TypeVar("F", bound=Callable[..., Any])

REMOTE_NAME = "slipway"
_GIT_URL = re.compile(r"/git/(?P<app>[^/]+?)(?:\.git)?/?$")


def app_option(func: F) -> F:
    """``-a/--app NAME``; without it, the app the ``slipway`` git remote points at."""
    return click.option(
        "-a",
        "--app",
        "app",
        metavar="NAME",
        help="The app (default: the one the `slipway` git remote points at).",
    )(func)


def git(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run git with an argument list; a missing git is reported as a one-line error."""
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
        )
    except FileNotFoundError as exc:
        raise CliError("git is not installed") from exc


def app_from_remote(cwd: Path | None = None) -> str | None:
    """The app name in the URL of the ``slipway`` remote of the current directory, if any."""
    result = git(["remote", "get-url", REMOTE_NAME], cwd=cwd)
    if result.returncode != 0:
        return None
    match = _GIT_URL.search(result.stdout.strip())
    return match.group("app") if match else None


def resolve_app(app: str | None) -> str:
    """The app given with ``--app``, else the one from the git remote, else a clear error."""
    name = app or app_from_remote()
    if not name:
        raise CliError(
            "no app given: use --app NAME, or run this in a directory with a `slipway` git remote"
        )
    return name
