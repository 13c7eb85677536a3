"""`slipway server up|down|status` for real: supervisord, redis, nginx, the gevent API process
(with the reconciler and collector in it) and the Celery worker."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
from pathlib import Path

import pytest
import requests

from tests.integration.platform import SLIPWAY, Platform, own_platform

pytestmark = pytest.mark.slow

PROGRAMS = {"api", "redis", "router", "worker"}


def _states(platform: Platform) -> dict[str, tuple[str, str]]:
    """name -> (state, pid) from `slipway server status`."""
    result = platform.server("status")
    rows = [line.split() for line in result.stdout.splitlines()]
    return {row[0]: (row[1], row[3]) for row in rows if len(row) == 4 and row[2] == "pid"}


def test_every_process_runs_and_the_api_and_router_answer(running_platform: Platform) -> None:
    states = _states(running_platform)

    assert set(states) == PROGRAMS
    assert {state for state, _ in states.values()} == {"RUNNING"}
    assert running_platform.api("GET", "/apps").status_code == 200
    assert running_platform.api("GET", "/apps", token="wrong").status_code == 401
    unknown = running_platform.http_get_app("nothing-here")
    assert unknown.status_code == 404
    assert "No app named nothing-here" in unknown.text


def test_the_admin_token_file_is_private(running_platform: Platform) -> None:
    path = running_platform.data_dir / "admin-token"

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == running_platform.admin_token


def test_the_data_dir_is_closed_to_host_accounts(running_platform: Platform) -> None:
    """Apps' volumes, build caches, sources and the database are root's alone to reach."""
    assert stat.S_IMODE(running_platform.data_dir.stat().st_mode) == 0o700


def test_up_again_restarts_nothing_and_prints_the_same(running_platform: Platform) -> None:
    before = _states(running_platform)

    result = running_platform.server("up")

    assert result.returncode == 0, result.stderr
    assert running_platform.admin_token in result.stdout
    assert running_platform.api_url in result.stdout
    assert _states(running_platform) == before


def test_the_control_plane_stays_on_loopback_and_in_its_data_dir(
    running_platform: Platform,
) -> None:
    conf = (running_platform.data_dir / "control-plane" / "supervisord.conf").read_text()

    assert f"file={running_platform.data_dir}/control-plane/supervisord.sock" in conf
    assert "/var/lib/slipway" not in conf
    assert "--bind 127.0.0.1" in conf  # redis
    api_pid = int(_states(running_platform)["api"][1])
    listening = _listening(api_pid)
    assert running_platform.settings.api_bind in listening
    assert listening and all(address.startswith("127.0.0.1:") for address in listening)


def _listening(pid: int) -> set[str]:
    """The IPv4 TCP addresses (``host:port``) a process listens on, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    found = set()
    for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = row.split()
        if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
            host_hex, port_hex = fields[1].split(":")
            host = ".".join(str(b) for b in reversed(bytes.fromhex(host_hex)))
            found.add(f"{host}:{int(port_hex, 16)}")
    return found


def test_down_stops_everything_and_up_brings_it_back() -> None:
    with own_platform() as platform:
        pids = [int(pid) for _, pid in _states(platform).values()]
        token = platform.admin_token

        result = platform.server("down")

        assert result.returncode == 0, result.stderr
        assert not [pid for pid in pids if _alive(pid)]
        with pytest.raises(requests.ConnectionError):
            requests.get(platform.api_url, timeout=5)
        with pytest.raises(requests.ConnectionError):
            platform.http_get_app("any")
        assert platform.server("status").returncode == 3

        again = platform.server("up")
        assert again.returncode == 0, again.stderr
        assert (platform.data_dir / "admin-token").read_text().strip() == token
        assert platform.api("GET", "/apps").status_code == 200


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists()


def test_a_relative_data_dir_is_refused(tmp_path: Path) -> None:
    env = dict(os.environ) | {"SLIPWAY_DATA_DIR": "relative/data"}
    result = subprocess.run(
        [SLIPWAY, "server", "up"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode != 0
    assert "absolute path" in result.stderr
    assert not (tmp_path / "relative").exists()
