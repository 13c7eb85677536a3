"""Spaces on a running platform, through the `slipway` CLI: create, checkpoint, fork, list,
attach, data written by `slipway run`, delete, and bad input that changes nothing."""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from typing import Any

import pytest

from tests.integration.platform import Platform
from tests.integration.test_processes_api import slipway

pytestmark = pytest.mark.slow


def ok(platform: Platform, home: Path, *args: str) -> str:
    result = slipway(platform, home, *args)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def refused(platform: Platform, home: Path, *args: str) -> str:
    """The one line a refused command prints."""
    result = slipway(platform, home, *args)
    assert result.returncode == 1, (args, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0].removeprefix("error: ")


def listed(platform: Platform, home: Path) -> dict[str, Any]:
    """Every space the admin sees, by name, without the figures that move (used)."""
    spaces = json.loads(ok(platform, home, "spaces:list", "--json"))
    return {s["name"]: {k: v for k, v in s.items() if k != "used"} for s in spaces}


def test_space_commands_and_bad_input(running_platform: Platform, tmp_path: Path) -> None:
    p, home = running_platform, tmp_path
    name = f"sp-{secrets.token_hex(3)}"
    assert f"Created space {name} of 64M." in ok(p, home, "spaces:create", name, "--size", "64M")
    ok(p, home, "spaces:checkpoint", name, "v1")
    assert f"({'fork of ' + name}@v1)" in ok(p, home, "spaces:fork", f"{name}@v1", f"{name}-old")
    assert f"(fork of {name})" in ok(p, home, "spaces:fork", name, f"{name}-now")

    rows = {line.split()[0]: line.split() for line in ok(p, home, "spaces").splitlines()}
    assert rows["NAME"] == ["NAME", "USED/SIZE", "CHECKPOINTS", "ATTACHED"]
    assert re.fullmatch(r"[0-9.]+[BKM]/64M", rows[name][1]), rows[name]
    assert rows[name][2:] == ["v1", "-"]
    assert rows[f"{name}-old"][2:] == ["-", "-"]
    before = listed(p, home)

    sentences = [
        refused(p, home, "spaces:create", "Bad_Name", "--size", "64M"),
        refused(p, home, "spaces:create", f"{name}-tiny", "--size", "1M"),
        refused(p, home, "spaces:fork", f"{name}@nope", f"{name}-x"),
        refused(p, home, "spaces:create", name, "--size", "64M"),
        refused(p, home, "spaces:checkpoint", name, "v1"),
    ]
    assert sentences == [
        "'Bad_Name' is not a valid space name. A space name is a DNS label: 1 to 63 lowercase "
        "letters, digits or dashes, starting with a letter and not ending with a dash.",
        "A space's size is at least 32M, such as 512M or 1G, not '1M'.",
        f"The space {name} has no checkpoint named 'nope'.",
        f"A space named {name!r} already exists.",
        f"The space {name} already has a checkpoint named 'v1'.",
    ]
    assert listed(p, home) == before

    for space in (name, f"{name}-old", f"{name}-now"):
        assert f"Deleted space {space}." in ok(p, home, "spaces:delete", space, "--confirm", space)
    assert name not in listed(p, home)
    assert refused(p, home, "spaces:info", name) == f"There is no space named {name!r}."
