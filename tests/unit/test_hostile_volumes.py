"""Root reads what apps write (notifications, logs) without ever following an app's link.

The app owns its volume and can make any name in it a link to a host file or directory. The
collector, the log reader and the failed-start diagnostics must then read nothing, remove
nothing, and never show the host's file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from slipway.services import collector, logs
from slipway.services.instances import failure_lines

SECRET = "secret-of-the-host"


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """A root-only directory of the host with a notification-shaped file and a log-shaped one."""
    folder = tmp_path / "host"
    folder.mkdir(mode=0o700)
    (folder / "1-web-oom.json").write_text(json.dumps({"type": "oom", "detail": SECRET}))
    (folder / "token").write_text(SECRET + "\n")
    return folder


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    root = tmp_path / "volume"
    for name in ("notifications", "log"):
        (root / name).mkdir(parents=True)
    return root


def fakes(volume: Path) -> tuple[Any, Any]:
    """An instance with no container and adapters whose volume is ``volume``."""
    instance = SimpleNamespace(volume_name="v", container_id=None, container_name="web.1")
    found = SimpleNamespace(path=volume)
    return instance, SimpleNamespace(volumes=SimpleNamespace(get=lambda name: found))


def untouched(host: Path) -> bool:
    return (
        sorted(os.listdir(host)) == ["1-web-oom.json", "token"]
        and SECRET in (host / "1-web-oom.json").read_text()
    )


def test_notifications_are_read_and_removed_beneath_the_volume(volume: Path) -> None:
    (volume / "notifications" / "5-web-crash.json").write_text('{"type": "crash"}')
    found = collector.pending_files(volume)
    assert [f.name for f in found] == ["5-web-crash.json"]
    assert collector.read_note(found[0]) == {"type": "crash"}
    collector.remove_files(found)
    assert os.listdir(volume / "notifications") == []


def test_a_notifications_directory_made_a_link_is_neither_read_nor_emptied(
    volume: Path, host: Path
) -> None:
    os.rmdir(volume / "notifications")
    (volume / "notifications").symlink_to(host)
    assert collector.pending_files(volume) == []
    planted = collector.NoteFile(volume, "1-web-oom.json")  # as if listed before the swap
    assert collector.read_note(planted) is None
    collector.remove_files([planted])
    assert untouched(host)


def test_a_notification_file_made_a_link_is_not_read(volume: Path, host: Path) -> None:
    (volume / "notifications" / "9-web-oom.json").symlink_to(host / "1-web-oom.json")
    found = collector.pending_files(volume)
    assert collector.read_note(found[0]) is None
    collector.remove_files(found)  # removes the link itself, never its target
    assert not os.path.lexists(volume / "notifications" / "9-web-oom.json")
    assert untouched(host)


def test_a_directory_swapped_for_a_link_between_reading_and_removing_loses_nothing(
    volume: Path, host: Path
) -> None:
    (volume / "notifications" / "1-web-oom.json").write_text('{"type": "oom"}')
    found = collector.pending_files(volume)
    assert collector.read_note(found[0]) == {"type": "oom"}
    os.rename(volume / "notifications", volume / "elsewhere")
    (volume / "notifications").symlink_to(host)
    collector.remove_files(found)
    assert untouched(host)


@pytest.mark.parametrize("which", ["log", "app.log"])
def test_a_log_made_a_link_to_a_host_file_shows_nothing(
    volume: Path, host: Path, which: str
) -> None:
    if which == "log":
        os.rmdir(volume / "log")
        (volume / "log").symlink_to(host)
        os.link(host / "token", host / "app.log")
    else:
        (volume / "log" / "app.log").symlink_to(host / "token")
    source = logs.LogSource("web.1", volume)
    assert logs.read_tail(source, 10) == ([], None)
    assert logs.tail([source], 10) == []
    instance, adapters = fakes(volume)
    assert SECRET not in "\n".join(failure_lines(adapters, instance))


def test_failed_start_diagnostics_show_the_apps_own_log(volume: Path) -> None:
    (volume / "log" / "app.log").write_text("".join(f"line {n}\n" for n in range(100)))
    instance, adapters = fakes(volume)
    lines = failure_lines(adapters, instance)
    assert lines[-1] == "line 99" and len(lines) == 30
