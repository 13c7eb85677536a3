"""Spaces on a running platform, through the `slipway` CLI: create, checkpoint, fork, list,
attach, data written by `slipway run`, delete, and bad input that changes nothing."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest

from tests.helpers import wait_until
from tests.integration.platform import Platform
from tests.integration.test_e2e_api import (
    ROLL_TIMEOUT,
    containers_of,
    deploy,
    log_of,
    new_app,
    python_app,
)
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


def run(platform: Platform, home: Path, app: str, script: str) -> str:
    return ok(platform, home, "run", "-a", app, "sh", "-c", script)


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


def test_data_written_by_slipway_run_lives_in_the_space_and_its_forks(
    running_platform: Platform, tmp_path: Path
) -> None:
    p, home = running_platform, tmp_path
    app = new_app(p, "spaces")
    result = deploy(p, app, python_app("v1"))
    assert result["state"] == "succeeded", log_of(p, app, result["id"])
    db = f"{app}-db"
    ok(p, home, "spaces:create", db, "--size", "64M")
    attached = ok(p, home, "spaces:attach", db, "--slot", "data", "-a", app)
    assert f"Attached {db} to {app} at /spaces/data/tree." in attached
    assert f"{app} rolls onto v2" in attached

    tree = "/spaces/data/tree"
    owner = run(p, home, app, f"echo one > {tree}/state; id -un; stat -c %U {tree}")
    assert owner.split() == ["mop", "mop"]
    ok(p, home, "spaces:checkpoint", db, "v1")
    run(p, home, app, f"echo two > {tree}/state")
    ok(p, home, "spaces:fork", f"{db}@v1", f"{db}-then")
    ok(p, home, "spaces:fork", db, f"{db}-now")
    ok(p, home, "spaces:attach", f"{db}-then", "--slot", "then", "-a", app)
    ok(p, home, "spaces:attach", f"{db}-now", "--slot", "now", "-a", app)

    # The fork from now diverges from its source: a write to one is not seen in the other.
    run(p, home, app, "echo three > /spaces/now/tree/state")
    read = "cat /spaces/data/tree/state /spaces/then/tree/state /spaces/now/tree/state"
    assert run(p, home, app, read).split() == ["two", "one", "three"]

    # Writing past the size fails inside the app; a reconciler pass then records nearly full
    # once, and re-arms when the data is gone.
    fill = "dd if=/dev/zero of=/spaces/now/tree/fill bs=1M count=100 2>&1; true"
    assert "No space left on device" in run(p, home, app, fill)
    assert reconcile(p) and reconcile(p)
    assert [e["data"] for e in nearly_full_events(p, app)] == [
        {"space": f"{db}-now", "used": ANY, "size": 64 * 1024**2}
    ]
    assert space_field(p, f"{db}-now", "nearly_full") is True
    run(p, home, app, "rm /spaces/now/tree/fill")
    assert reconcile(p)
    assert space_field(p, f"{db}-now", "nearly_full") is False
    assert len(nearly_full_events(p, app)) == 1

    # The attachments reached the app's instances too: each roll replaced them.
    wait_until(rolled_onto_the_last_release(p, app), ROLL_TIMEOUT, "the attach rolls ended")
    assert instance_mounts(app) == ["/spaces/data/tree", "/spaces/now/tree", "/spaces/then/tree"]

    rows = {line.split()[0]: line.split() for line in ok(p, home, "spaces:list").splitlines()}
    assert rows[db][2:] == ["v1", f"{app}:data"]
    assert rows[f"{db}-now"][3:] == [f"{app}:now"]

    assert refused(p, home, "spaces:delete", db, "--confirm", db) == (
        f"The space {db} is attached to app {app} in slot data; detach it first or use --force."
    )
    assert run(p, home, app, f"cat {tree}/state").split() == ["two"]
    assert f"Detached {db} from {app} (slot data)." in ok(
        p, home, "spaces:detach", "--slot", "data", "-a", app
    )
    ok(p, home, "spaces:delete", db, "--confirm", db)
    for fork in (f"{db}-then", f"{db}-now"):
        deleted = ok(p, home, "spaces:delete", fork, "--force", "--confirm", fork)
        assert f"Detached from {app}" in deleted
    assert not [n for n in listed(p, home) if n.startswith(db)]
    wait_until(rolled_onto_the_last_release(p, app), ROLL_TIMEOUT, "the last roll ended")
    assert p.api("DELETE", f"/apps/{app}", timeout=120).status_code == 204


def reconcile(platform: Platform) -> bool:
    result = platform.server("reconcile", timeout=120)
    assert result.returncode == 0, result.stderr
    return True


def nearly_full_events(platform: Platform, app: str) -> list[dict[str, Any]]:
    events = platform.api("GET", f"/apps/{app}/events?type=space_nearly_full").json()
    assert isinstance(events, list), events
    return events


def space_field(platform: Platform, name: str, field: str) -> Any:
    return platform.api("GET", f"/spaces/{name}").json()[field]


def instance_mounts(app: str) -> list[str]:
    """Where the app's running instance containers mount spaces."""
    running = [c for c in containers_of(app, "instance") if c.status == "running"]
    assert running, f"{app} has no running instance"
    targets = {m["Destination"] for c in running for m in c.attrs["Mounts"]}
    return sorted(t for t in targets if t.startswith("/spaces/"))


def rolled_onto_the_last_release(platform: Platform, app: str) -> Callable[[], bool]:
    """Each attach and detach queued a roll: they are done once the newest release is live."""

    def check() -> bool:
        newest = platform.api("GET", f"/apps/{app}/releases").json()[0]["version"]
        view = platform.api("GET", f"/apps/{app}").json()
        return view["release"]["version"] == newest and view["state"] == "running"

    return check
