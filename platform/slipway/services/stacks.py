"""Which language stack a source tree is, and the build and run images that serve it."""

from __future__ import annotations

from pathlib import Path

from slipway.config import Settings

STACKS = ("node", "python", "static")


def detect_stack(source: Path) -> str:
    """``package.json`` → node; ``requirements.txt`` or ``pyproject.toml`` → python; else static."""
    if (source / "package.json").is_file():
        return "node"
    if (source / "requirements.txt").is_file() or (source / "pyproject.toml").is_file():
        return "python"
    return "static"


def build_image(settings: Settings, stack: str) -> str:
    return f"{settings.image_prefix}build-{stack}:latest"


def run_image(settings: Settings, stack: str) -> str:
    return f"{settings.image_prefix}run-{stack}:latest"
