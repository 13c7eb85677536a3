"""Which language stack a source tree is, and the build and run images that serve it."""

from __future__ import annotations

from pathlib import Path

from slipway import beneath
from slipway.config import Settings

STACKS = ("node", "python", "static")


def detect_stack(source: Path) -> str:
    """``package.json`` → node; ``requirements.txt`` or ``pyproject.toml`` → python; else static.

    The source is a user's: only regular files count, looked at beneath ``source`` (a link
    named ``package.json`` is not followed, wherever it points).
    """
    with beneath.opened(beneath.open_root(source)) as root:
        if beneath.is_regular(root, "package.json"):
            return "node"
        if beneath.is_regular(root, "requirements.txt") or beneath.is_regular(
            root, "pyproject.toml"
        ):
            return "python"
    return "static"


def build_image(settings: Settings, stack: str) -> str:
    return f"{settings.image_prefix}build-{stack}:latest"


def run_image(settings: Settings, stack: str) -> str:
    return f"{settings.image_prefix}run-{stack}:latest"
