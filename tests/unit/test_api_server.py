"""The API process's parts that need no running gevent loop: addresses, agents, the access log.

The process itself (gevent, the agents running, SIGTERM) is tested for real in
tests/integration/test_control_plane.py.
"""

from __future__ import annotations

import sys
import threading
import types
from pathlib import Path
from unittest import mock

import pytest

from slipway.config import Settings
from slipway.host import api_server


def test_a_missing_optional_agent_is_none_but_a_broken_one_is_an_error(tmp_path: Path) -> None:
    assert api_server.optional_agent("slipway.host.no_such_agent", "run") is None

    (tmp_path / "broken_agent_mod.py").write_text("import no_such_dependency_of_it\n")
    with mock.patch.object(sys, "path", [str(tmp_path), *sys.path]):
        with pytest.raises(ModuleNotFoundError):
            api_server.optional_agent("broken_agent_mod", "run")
    sys.modules.pop("broken_agent_mod", None)


def test_the_agents_include_the_sleeper_and_the_waker_when_they_exist(settings: Settings) -> None:
    def loop(_settings: Settings, _stop: threading.Event) -> None: ...

    fake = types.ModuleType("fake")
    fake.sleep_loop = loop  # type: ignore[attr-defined]
    fake.serve = loop  # type: ignore[attr-defined]
    present = {"slipway.host.sleeper": fake, "slipway.host.waker": fake}
    with mock.patch.dict(sys.modules, present):
        names = [a.name for a in api_server.agents(settings)]
    assert names[:2] == ["reconciler", "collector"]
    assert names[-2:] == ["sleeper", "wake service"]

    without_backups = settings.with_overrides(space_backup_interval=0)
    with mock.patch.object(api_server, "optional_agent", return_value=None):
        names = [a.name for a in api_server.agents(without_backups)]
    assert names == ["reconciler", "collector"]


def test_an_agent_that_fails_is_started_again_until_the_stop(settings: Settings) -> None:
    stop = threading.Event()
    runs: list[int] = []

    def flaky(_settings: Settings, _stop: threading.Event) -> None:
        runs.append(1)
        if len(runs) == 3:
            stop.set()
            return
        raise RuntimeError("boom")

    spec = api_server.AgentSpec("flaky", flaky)
    with mock.patch.object(api_server, "RESTART_PAUSE", 0.01):
        thread = threading.Thread(target=api_server.keep_running, args=(spec, settings, stop))
        thread.start()
        thread.join(10)

    assert not thread.is_alive()
    assert len(runs) == 3


def _handler(**attributes: object) -> api_server.AccessLogHandler:
    handler = api_server.AccessLogHandler.__new__(api_server.AccessLogHandler)
    defaults: dict[str, object] = {
        "environ": {"HTTP_USER_AGENT": "curl/8", "HTTP_REFERER": "http://x/"},
        "client_address": ("127.0.0.1", 5555),
        "_orig_status": "200 OK",
        "status": "200 OK",
        "time_start": 1_700_000_000.0,
        "requestline": "GET /api/v1/apps HTTP/1.1",
        "response_length": 42,
    }
    for name, value in (defaults | attributes).items():
        setattr(handler, name, value)
    return handler


def test_access_log_lines_read_like_gunicorns() -> None:
    line = _handler().format_request()

    assert line.startswith("127.0.0.1 - - [")
    assert line.endswith('] "GET /api/v1/apps HTTP/1.1" 200 42 "http://x/" "curl/8"')
    websocket = _handler(
        environ={"HTTP_UPGRADE": "websocket"}, _orig_status=None, status=None, response_length=0
    ).format_request()
    assert websocket.endswith('" 101 - "-" "-"')


def test_slipway_server_api_becomes_the_api_server_module() -> None:
    from click.testing import CliRunner

    from slipway.cli.server import server

    with mock.patch("os.execv") as execv:
        result = CliRunner().invoke(server, ["api"])

    assert result.exit_code == 0, result.output
    execv.assert_called_once_with(sys.executable, [sys.executable, "-m", "slipway.host.api_server"])
