"""The bare repositories under ``settings.git_dir``: one per app, created on first use."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from slipway.config import Settings
from slipway.locks import file_lock
from slipway.services.errors import Invalid

HOOK_NAME = "pre-receive"


def repo_path(settings: Settings, app: str) -> Path:
    # App names are validated by the apps service; refuse anything that could leave git_dir.
    if not app or "/" in app or app.startswith("."):
        raise Invalid(f"{app!r} is not an app name.")
    return settings.git_dir / f"{app}.git"


def hook_script() -> str:
    return resources.files("slipway.gitserver").joinpath("pre-receive.sh").read_text()


def _git(args: list[str], cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _install_hook(repo: Path) -> None:
    hook = repo / "hooks" / HOOK_NAME
    script = hook_script()
    if hook.is_file() and hook.read_text() == script:
        return
    hook.parent.mkdir(parents=True, exist_ok=True)
    tmp = hook.with_name(f".{HOOK_NAME}.tmp")
    tmp.write_text(script)
    tmp.chmod(0o755)
    os.replace(tmp, hook)  # never leave a half-written hook that git would run


def ensure_repo(settings: Settings, app: str) -> Path:
    """The app's bare repository, created (with the Slipway hook) when it does not exist."""
    repo = repo_path(settings, app)
    if not (repo / "HEAD").is_file():
        repo.mkdir(parents=True, exist_ok=True)
        _git(["init", "--quiet", "--bare", "--initial-branch=main", "."], repo)
        # Deploys follow whatever was pushed, as Heroku and Dokku do: force pushes are fine.
        _git(["config", "receive.denyNonFastForwards", "false"], repo)
        _git(["config", "http.receivepack", "true"], repo)
    _install_hook(repo)
    return repo


@contextmanager
def push_lock(settings: Settings, app: str, timeout: float) -> Iterator[None]:
    """Serialise pushes to one app: the second waits until the first one's deploy ends."""
    path = settings.git_dir / f"{app}.push.lock"
    with file_lock(path, timeout, f"Another push to {app} is still running."):
        yield
