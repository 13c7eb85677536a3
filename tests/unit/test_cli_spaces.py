"""`slipway spaces:*` against the fake API of test_cli: what each command sends and prints."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from slipway.cli.main import cli
from slipway.cli.spaces import human
from tests.unit import test_cli
from tests.unit.test_cli import FakeApi, run

G = 1024**3
DB = {
    "name": "db",
    "owner": "alice",
    "size": G,
    "used": 300 * 1024**2,
    "state": "ready",
    "origin": "",
    "checkpoints": [{"name": "v1", "created_at": "2026-11-28T04:00:00+00:00"}],
    "attachments": [{"app": "blog", "slot": "data", "process_types": []}],
    "copies": False,
    "created_at": "2026-11-28T03:00:00+00:00",
}


def attempt(*args: str, input: str | None = None) -> Result:
    """Run a command that is expected to fail, as a user would see it."""
    return CliRunner().invoke(cli, list(args), input=input)


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeApi]:
    yield from test_cli.api.__wrapped__(monkeypatch, tmp_path)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("size", "shown"), [(0, "0B"), (1000, "1000B"), (512 * 1024**2, "512M"), (G + G // 2, "1.5G")]
)
def test_sizes_read_short(size: int, shown: str) -> None:
    assert human(size) == shown


def test_list_shows_used_of_size_checkpoints_and_attachments(api: FakeApi) -> None:
    api.on("GET", "/spaces", (200, [DB]))
    for command in (["spaces"], ["spaces:list"]):
        lines = run(*command).output.splitlines()
        assert lines[0].split() == ["NAME", "USED/SIZE", "CHECKPOINTS", "ATTACHED"]
        assert lines[1].split() == ["db", "300M/1G", "v1", "blog:data"]
    api.on("GET", "/spaces", (200, []))
    assert "You have no spaces yet" in run("spaces:list").output


def test_create_checkpoint_and_fork_send_what_the_api_wants(api: FakeApi) -> None:
    api.on("POST", "/spaces", (201, {**DB, "used": 0, "checkpoints": [], "attachments": []}))
    assert "Created space db of 1G." in run("spaces:create", "db", "--size", "1G").output
    assert api.last("POST", "/spaces").json() == {"name": "db", "size": "1G"}
    api.on("POST", "/spaces/db/checkpoints", (201, DB["checkpoints"][0]))  # type: ignore[index]
    assert run("spaces:checkpoint", "db", "v1").output == "Checkpointed db as v1.\n"
    assert api.last("POST", "/spaces/db/checkpoints").json() == {"name": "v1"}
    api.on("POST", "/spaces/fork", (201, {**DB, "name": "old", "origin": "fork of db@v1"}))
    assert run("spaces:fork", "db@v1", "old").output == "Created space old (fork of db@v1).\n"
    assert api.last("POST", "/spaces/fork").json() == {"source": "db@v1", "name": "old"}


def test_an_api_error_is_one_line_and_a_failure(api: FakeApi) -> None:
    api.on("POST", "/spaces", (422, {"error": "A space's size is at least 32M, not '1M'."}))
    result = attempt("spaces:create", "tiny", "--size", "1M")
    assert result.exit_code == 1
    assert result.output == "error: A space's size is at least 32M, not '1M'.\n"


def test_delete_asks_for_the_name_and_passes_force(api: FakeApi) -> None:
    detached = {"deleted": "db", "detached": [{"app": "blog", "slot": "data"}]}
    api.on("DELETE", "/spaces/db", (200, detached))
    refused = attempt("spaces:delete", "db", "--force", input="nope\n")
    assert refused.exit_code == 1
    assert "nothing deleted" in refused.output
    assert not [s for s in api.seen if s.method == "DELETE"]
    output = run("spaces:delete", "db", "--force", input="db\n").output
    assert output.endswith("Detached from blog (slot data).\nDeleted space db.\n")
    assert api.last("DELETE", "/spaces/db").query == {"force": ["1"]}
    run("spaces:delete", "db", "--confirm", "db")
    assert api.last("DELETE", "/spaces/db").query == {}


def test_attach_and_detach_say_the_app_rolls(api: FakeApi) -> None:
    attached = {"space": "db", "app": "blog", "slot": "data", "mount": "/spaces/data/tree"}
    api.on("POST", "/spaces/db/attach", (201, {**attached, "release": 4}))
    output = run("spaces:attach", "db", "--slot", "data", "-a", "blog", "--process-types", "web")
    assert output.output == (
        "Attached db to blog at /spaces/data/tree.\n"
        "blog rolls onto v4 so its instances get the change.\n"
    )
    sent = api.last("POST", "/spaces/db/attach").json()
    assert sent == {"app": "blog", "slot": "data", "process_types": ["web"]}
    api.on("DELETE", "/apps/blog/spaces/data", (200, {**attached, "release": None}))
    assert run("spaces:detach", "--slot", "data", "-a", "blog").output == (
        "Detached db from blog (slot data).\nblog has no release yet: its first deploy mounts it.\n"
    )


def test_help_names_the_commands(api: FakeApi) -> None:
    output = run("spaces", "--help").output
    for command in ("create", "list", "info", "checkpoint", "fork", "delete", "attach", "detach"):
        assert f"  {command} " in output
    assert "SOURCE[@CHECKPOINT] NEW" in run("spaces:fork", "--help").output
