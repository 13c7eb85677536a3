"""`slipway run` with a terminal: the service, the API's websocket conversation and the CLI's
side of it, with fakes (the real thing is in tests/integration/test_run_terminal.py)."""

from __future__ import annotations

import dataclasses
import json
import os
import queue
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import websocket

from slipway.adapters import Adapters
from slipway.api import terminal as api_terminal
from slipway.api.websocket import ConnectionClosed
from slipway.cli import terminal as cli_terminal
from slipway.cli.client import CliError
from slipway.config import Settings
from slipway.db import session_scope, upgrade_database
from slipway.runtime.base import TerminalSize
from slipway.services import layout, oneoff, users
from slipway.services.errors import Conflict, Invalid
from slipway.webapp import create_app
from tests.fakes import FakeRuntime, FakeTerminal, fake_adapters

# -- the service ----------------------------------------------------------------------------


@pytest.fixture
def adapters(tmp_path: Path) -> Adapters:
    return fake_adapters(tmp_path / "adapters")


@pytest.fixture
def plan(tmp_path: Path) -> oneoff.RunPlan:
    output = tmp_path / "output"
    output.mkdir()
    (output / "hello.txt").write_text("hello\n")
    slug = tmp_path / f"slug{layout.SLUG_SUFFIX}"
    layout.pack_slug(output, slug)
    return oneoff.RunPlan(
        app="hello",
        version=4,
        stack="python",
        slug_path=slug,
        config={"GREETING": "hi"},
        memory=256 * 1024**2,
        command=["bash"],
        name="slipway-run-hello-1700000000-abcdef",
    )


def runtime_of(adapters: Adapters) -> FakeRuntime:
    assert isinstance(adapters.runtime, FakeRuntime)
    return adapters.runtime


def test_a_terminal_run_has_every_limit_of_a_plain_run(
    adapters: Adapters, settings: Settings, plan: oneoff.RunPlan
) -> None:
    seen: list[Path] = []

    def attach(terminal: object) -> None:
        seen.extend(volume.path for volume in adapters.volumes.list())
        assert isinstance(terminal, FakeTerminal)
        terminal.write(b"exit 3\r")

    request = oneoff.TerminalRequest(TerminalSize(30, 100), "xterm-256color")
    result = oneoff.execute_with_terminal(adapters, settings, plan, request, attach)

    assert result.exit_status == 3 and not result.timed_out
    (terminal,) = runtime_of(adapters).terminals
    assert terminal.size == TerminalSize(30, 100)
    plain = oneoff.run_spec(settings, plan, seen[0])
    assert terminal.spec.env == plain.env | {"TERM": "xterm-256color"}
    for same in ("image", "name", "mounts", "limits", "timeout", "labels", "command", "network"):
        assert getattr(terminal.spec, same) == getattr(plain, same), same
    assert (seen[0] / "app" / "hello.txt").read_text() == "hello\n"
    assert adapters.volumes.list() == []  # the run's volume is gone


def test_the_volume_goes_when_the_terminal_fails(
    adapters: Adapters, settings: Settings, plan: oneoff.RunPlan
) -> None:
    def attach(terminal: object) -> None:
        raise ConnectionClosed(1006, "gone")

    request = oneoff.TerminalRequest(TerminalSize(24, 80))
    with pytest.raises(ConnectionClosed):
        oneoff.execute_with_terminal(adapters, settings, plan, request, attach)

    assert runtime_of(adapters).terminals[0].removed
    assert adapters.volumes.list() == []


@pytest.mark.parametrize(
    ("rows", "cols", "term"),
    [(0, 80, None), (24, "80", None), (24, True, None), (24, 10_001, None), (24, 80, "x y")],
)
def test_a_bad_terminal_request_is_refused(rows: object, cols: object, term: object) -> None:
    with pytest.raises(Invalid):
        oneoff.TerminalRequest.parse(rows, cols, term)


def test_a_terminal_request_defaults_to_xterm() -> None:
    assert oneoff.TerminalRequest.parse(24, 80) == oneoff.TerminalRequest(TerminalSize(24, 80))
    assert oneoff.TerminalRequest.parse(24, 80).term == "xterm"


# -- the API's conversation -----------------------------------------------------------------


@dataclass
class FakeSocket:
    """The server's side of a websocket: the client's messages are queued up front.

    With ``leaves``, the client goes away once its queued messages are read.
    """

    incoming: queue.Queue[bytes | str] = field(default_factory=queue.Queue)
    sent: list[bytes | str] = field(default_factory=list)
    leaves: bool = False
    gone: bool = False

    def send(self, data: bytes | str) -> None:
        if self.gone:
            raise ConnectionClosed(1006, "gone")
        self.sent.append(data)

    def receive(self, timeout: float | None = None) -> bytes | str | None:
        try:
            return self.incoming.get(timeout=min(timeout or 1.0, 1.0))
        except queue.Empty:
            if self.leaves:
                self.gone = True
                raise ConnectionClosed(1006, "gone") from None
            return None

    def close(self, reason: int | None = None, message: str | None = None) -> None:
        pass

    def texts(self) -> list[dict[str, object]]:
        return [json.loads(m) for m in self.sent if isinstance(m, str)]

    def output(self) -> bytes:
        return b"".join(m for m in self.sent if isinstance(m, bytes))


def start(**changes: object) -> str:
    return json.dumps({"command": "bash", "rows": 24, "cols": 80} | changes)


def test_a_session_relays_keys_output_resizes_and_the_exit_status(
    adapters: Adapters, settings: Settings, plan: oneoff.RunPlan
) -> None:
    socket = FakeSocket()
    for message in (start(term="screen"), b"ls\r", '{"resize": [50, 200]}', b"exit 7\r"):
        socket.incoming.put(message)

    api_terminal.serve(socket, adapters, settings, lambda command: plan)

    texts = socket.texts()
    assert texts[0] == {"info": "Running bash on hello (v4)"}
    assert texts[-1]["exit_status"] == 7 and texts[-1]["timed_out"] is False
    assert socket.output() == b"ls\rexit 7\r"  # the fake terminal echoes, as a TTY does
    (terminal,) = runtime_of(adapters).terminals
    assert terminal.spec.env["TERM"] == "screen"
    assert terminal.sizes == [TerminalSize(50, 200)]
    assert isinstance(socket.sent[-1], str)  # the status comes after the last output


def test_a_session_whose_client_went_away_stops_the_command(
    adapters: Adapters, settings: Settings, plan: oneoff.RunPlan
) -> None:
    socket = FakeSocket(leaves=True)
    socket.incoming.put(start())
    socket.incoming.put(b"sleep 100\r")

    api_terminal.serve(socket, adapters, settings, lambda command: plan)

    (terminal,) = runtime_of(adapters).terminals
    assert terminal.removed and terminal.exit_code is None
    assert socket.texts() == [{"info": "Running bash on hello (v4)"}]  # no status: it left
    assert adapters.volumes.list() == []


@pytest.mark.parametrize(
    ("first", "says"),
    [
        (b"bash", "Send the command"),
        ("not json", "Send the command"),
        (start(rows=0), '"rows" and "cols"'),
        (start(command=[]), '"command" must be'),
    ],
)
def test_a_bad_first_message_is_an_error_and_starts_nothing(
    adapters: Adapters, settings: Settings, plan: oneoff.RunPlan, first: bytes | str, says: str
) -> None:
    socket = FakeSocket()
    socket.incoming.put(first)

    def plan_for(command: object) -> oneoff.RunPlan:
        return dataclasses.replace(plan, command=oneoff.parse_command(command))

    api_terminal.serve(socket, adapters, settings, plan_for)

    assert socket.texts() == [{"error": socket.texts()[0]["error"]}]
    assert says in str(socket.texts()[0]["error"])
    assert runtime_of(adapters).terminals == []


def test_an_app_without_a_release_is_an_error(adapters: Adapters, settings: Settings) -> None:
    socket = FakeSocket()
    socket.incoming.put(start())

    def no_release(command: object) -> oneoff.RunPlan:
        raise Conflict("App 'hello' has no release yet: deploy it first.")

    api_terminal.serve(socket, adapters, settings, no_release)

    assert socket.texts() == [{"error": "App 'hello' has no release yet: deploy it first."}]


@pytest.mark.parametrize(
    ("message", "size"),
    [
        ('{"resize": [40, 120]}', (40, 120)),
        ('{"resize": [0, 120]}', None),
        ('{"resize": [40]}', None),
        ('{"size": [40, 120]}', None),
        ("[1, 2]", None),
        ("nonsense", None),
    ],
)
def test_resize_messages(message: str, size: tuple[int, int] | None) -> None:
    assert api_terminal.parse_resize(message) == size


def test_the_call_answers_only_a_websocket_of_a_known_user_and_app(
    settings: Settings, tmp_path: Path
) -> None:
    upgrade_database(settings)
    flask_app = create_app(settings, fake_adapters(tmp_path / "adapters"))
    with session_scope(flask_app.extensions["slipway"].session_factory) as session:
        token = users.create_token(session, users.create_user(session, "alice", False))
    client = flask_app.test_client()
    url = "/api/v1/apps/nope/run/tty"
    upgrade = {"Upgrade": "websocket", "Connection": "Upgrade"}
    auth = {"Authorization": f"Bearer {token}"}

    assert client.get(url, headers=auth).status_code == 400  # no websocket handshake
    assert client.get(url, headers=upgrade).status_code == 401
    missing = client.get(url, headers=upgrade | auth)
    assert missing.status_code == 404 and "nope" in missing.get_json()["error"]


# -- the CLI's side -------------------------------------------------------------------------


def test_websocket_urls() -> None:
    assert (
        cli_terminal.websocket_url("http://127.0.0.1:5000", "/apps/a/run/tty")
        == "ws://127.0.0.1:5000/api/v1/apps/a/run/tty"
    )
    assert cli_terminal.websocket_url("https://paas.example", "/x") == "wss://paas.example/api/v1/x"


def test_a_refused_websocket_says_why() -> None:
    body = json.dumps({"error": "No app named 'nope'."}).encode()
    assert cli_terminal.refusal(404, body) == "No app named 'nope'."
    assert "slipway login" in cli_terminal.refusal(401, None)
    assert "400" in cli_terminal.refusal(400, b"<html>")


class FakeConnection:
    """The CLI's websocket: scripted messages from the server, readable through a pipe."""

    sock = None  # no TLS buffer to look at

    def __init__(self, messages: list[tuple[int, bytes]]) -> None:
        self.messages = messages
        self.read_end, self.write_end = os.pipe()
        os.write(self.write_end, b"." * len(messages))  # one readable byte per message
        self.sent: list[bytes | str] = []

    def fileno(self) -> int:
        return self.read_end

    def recv_data(self, control_frame: bool = False) -> tuple[int, bytes]:
        os.read(self.read_end, 1)
        return self.messages.pop(0)

    def send(self, data: str) -> None:
        self.sent.append(data)

    def send_binary(self, data: bytes) -> None:
        self.sent.append(data)


@pytest.fixture
def pipes() -> Iterator[tuple[int, int, int, int]]:
    """(stdin read end, stdin write end, stdout read end, stdout write end)."""
    stdin_r, stdin_w = os.pipe()
    stdout_r, stdout_w = os.pipe()
    yield stdin_r, stdin_w, stdout_r, stdout_w
    for fd in (stdin_r, stdin_w, stdout_r, stdout_w):
        os.close(fd)


TEXT, BINARY, CLOSE = (
    websocket.ABNF.OPCODE_TEXT,
    websocket.ABNF.OPCODE_BINARY,
    websocket.ABNF.OPCODE_CLOSE,
)


def session(connection: FakeConnection, pipes: tuple[int, int, int, int]) -> int:
    stdin_r, _, _, stdout_w = pipes
    wake_r, wake_w = os.pipe()
    try:
        live = cli_terminal.Session(connection, stdin_r, stdout_w, wake_r)  # type: ignore[arg-type]
        return live.run()
    finally:
        os.close(wake_r)
        os.close(wake_w)


def test_the_cli_shows_output_and_exits_with_the_remote_status(
    pipes: tuple[int, int, int, int],
) -> None:
    connection = FakeConnection(
        [(BINARY, b"hello\r\n"), (BINARY, b"$ "), (TEXT, b'{"exit_status": 7}')]
    )
    assert session(connection, pipes) == 7
    assert os.read(pipes[2], 100) == b"hello\r\n$ "


def test_the_cli_sends_keys_as_binary_messages(pipes: tuple[int, int, int, int]) -> None:
    class Exiting(FakeConnection):
        """Answers the first key with the exit status, as a shell's ``exit`` would."""

        def send_binary(self, data: bytes) -> None:
            super().send_binary(data)
            self.messages.append((TEXT, b'{"exit_status": 0}'))
            os.write(self.write_end, b".")

    connection = Exiting([])
    os.write(pipes[1], b"\x03")  # Ctrl-C is a byte like any other

    assert session(connection, pipes) == 0
    assert connection.sent == [b"\x03"]


def test_the_cli_reports_a_timeout_and_an_error(pipes: tuple[int, int, int, int]) -> None:
    timed_out = FakeConnection([(TEXT, b'{"exit_status": null, "timed_out": true}')])
    assert session(timed_out, pipes) == cli_terminal.TIMED_OUT_STATUS
    failed = FakeConnection([(TEXT, b'{"error": "The one-off container could not run."}')])
    with pytest.raises(CliError, match="could not run"):
        session(failed, pipes)
    closed = FakeConnection([(BINARY, b"bye"), (CLOSE, b"")])
    with pytest.raises(CliError, match="before the command's exit status"):
        session(closed, pipes)
