"""`slipway run` with a terminal: the one-off container's TTY becomes this terminal.

The local terminal goes into raw mode, so every key, Ctrl-C included, goes to the container as
a byte, and its terminal makes of it what a local one would (Ctrl-C: SIGINT to the foreground
program). The window's size follows the local one. The messages are described in
``slipway.api.terminal``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import select
import signal
import sys
import termios
import tty
from collections.abc import Iterator
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import websocket

from slipway.cli.client import API_PREFIX, CONNECT_TIMEOUT, LOOPBACK, Client, CliError

TIMED_OUT_STATUS = 124  # what timeout(1) exits with
DEFAULT_SIZE = (24, 80)
TERM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+_-]{0,63}$")
CHUNK = 16 * 1024
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def run_with_terminal(client: Client, app: str, command: str | list[str]) -> int:
    """Run ``command`` on ``app`` with this terminal attached; its exit status."""
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    rows, cols = terminal_size(stdout, stdin)
    start = {"command": command, "rows": rows, "cols": cols, "term": _term()}
    connection = connect(client, f"/apps/{app}/run/tty")
    try:
        connection.send(json.dumps(start))
        sys.stdout.flush()
        sys.stderr.flush()
        with raw_mode(stdin), _window_changes() as wake:
            return Session(connection, stdin, stdout, wake).run()
    except (websocket.WebSocketException, OSError) as exc:
        raise CliError(f"the connection broke while the command ran: {exc}") from exc
    finally:
        with contextlib.suppress(websocket.WebSocketException, OSError):
            connection.close(timeout=1)


def websocket_url(api_url: str, path: str) -> str:
    """``ws://`` (or ``wss://`` for https) for an API path."""
    scheme, _, rest = api_url.partition("://")
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}{API_PREFIX}{path}"


def connect(client: Client, path: str) -> websocket.WebSocket:
    url = websocket_url(client.url, path)
    options: dict[str, Any] = {"header": [f"Authorization: Bearer {client.token}"]}
    host = urlsplit(client.url).hostname
    if host in LOOPBACK:  # a proxy from the environment cannot reach this host's loopback
        options["http_no_proxy"] = [host]
    try:
        connection = websocket.create_connection(url, timeout=CONNECT_TIMEOUT, **options)
    except websocket.WebSocketBadStatusException as exc:
        raise CliError(refusal(exc.status_code, exc.resp_body)) from exc
    except (websocket.WebSocketException, OSError) as exc:
        raise CliError(f"cannot reach the Slipway API at {client.url}: is it running?") from exc
    connection.settimeout(None)  # a terminal may stay quiet for as long as its user likes
    return connection


def refusal(status: int, body: bytes | None) -> str:
    """The sentence for a websocket the API refused (its JSON error, as for every call)."""
    with contextlib.suppress(ValueError):
        message = json.loads(body or b"")
        if isinstance(message, dict) and message.get("error"):
            return str(message["error"])
    if status == 401:
        return "the token was refused: run `slipway login` again"
    return f"the API answered {status} instead of opening the terminal"


def terminal_size(*fds: int) -> tuple[int, int]:
    """``(rows, cols)`` of the first of ``fds`` that is a terminal."""
    for fd in fds:
        with contextlib.suppress(OSError):
            size = os.get_terminal_size(fd)
            if size.lines > 0 and size.columns > 0:
                return size.lines, size.columns
    return DEFAULT_SIZE


def _term() -> str:
    term = os.environ.get("TERM", "")
    return term if TERM_RE.match(term) else "xterm"


@contextlib.contextmanager
def raw_mode(fd: int) -> Iterator[None]:
    """Raw mode on the terminal ``fd`` (nothing when it is no terminal), restored on the way
    out whatever happens; SIGTERM and SIGHUP end the command through that way out too."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    previous = {sig: signal.signal(sig, _exit_on_signal) for sig in STOP_SIGNALS}
    try:
        tty.setraw(fd, termios.TCSADRAIN)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _window_changes() -> Iterator[int]:
    """A file descriptor that becomes readable when the window's size changes (SIGWINCH)."""
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    os.set_blocking(write_end, False)
    previous_handler = signal.signal(signal.SIGWINCH, lambda _signum, _frame: None)
    previous_fd = signal.set_wakeup_fd(write_end)
    try:
        yield read_end
    finally:
        signal.set_wakeup_fd(previous_fd)
        signal.signal(signal.SIGWINCH, previous_handler)
        os.close(read_end)
        os.close(write_end)


class Session:
    """Keys and window sizes to the websocket, output to the screen, until the exit status."""

    def __init__(self, connection: websocket.WebSocket, stdin: int, stdout: int, wake: int):
        self.connection = connection
        self.stdin = stdin
        self.stdout = stdout
        self.wake = wake
        self.size = terminal_size(stdout, stdin)

    def run(self) -> int:
        server = self.connection.fileno()
        readers = [server, self.stdin, self.wake]
        while True:
            ready, _, _ = select.select(readers, [], [])
            if self.wake in ready:
                self._window_changed()
            if self.stdin in ready and not self._forward_keys():
                readers.remove(self.stdin)  # end of input: the command still runs on
            if server in ready:
                status = self._receive()
                if status is not None:
                    return status

    def _window_changed(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self.wake, 512)
        size = terminal_size(self.stdout, self.stdin)
        if size != self.size:
            self.size = size
            self.connection.send(json.dumps({"resize": list(size)}))

    def _forward_keys(self) -> bool:
        data = os.read(self.stdin, CHUNK)
        if data:
            self.connection.send_binary(data)
        return bool(data)

    def _receive(self) -> int | None:
        """Handle every message waiting; the exit status once it came."""
        while True:
            opcode, data = self.connection.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_BINARY:
                _write_all(self.stdout, data)
            elif opcode == websocket.ABNF.OPCODE_TEXT:
                status = self._message(json.loads(data))
                if status is not None:
                    return status
            elif opcode == websocket.ABNF.OPCODE_CLOSE:
                raise CliError("the connection closed before the command's exit status came")
            pending = getattr(self.connection.sock, "pending", None)  # TLS's own buffer
            if not (pending and pending()):
                return None

    def _message(self, message: dict[str, Any]) -> int | None:
        if "info" in message:
            _write_all(sys.stderr.fileno(), f"{message['info']}\r\n".encode())
        elif "error" in message:
            raise CliError(str(message["error"]))
        elif "exit_status" in message:
            if message.get("timed_out"):
                text = "\r\nThe command ran past the time limit and was stopped.\r\n"
                _write_all(sys.stderr.fileno(), text.encode())
                return TIMED_OUT_STATUS
            return int(message["exit_status"])
        return None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except InterruptedError:
            continue
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                select.select([], [fd], [])
                continue
            raise
        view = view[written:]
