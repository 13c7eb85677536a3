"""``/apps/<app>/run/tty``: a one-off command with a terminal (``slipway run bash``).

A websocket, opened with the API token like every call. The client's first message is text:
``{"command": "bash", "rows": 24, "cols": 80, "term": "xterm-256color"}`` (``term`` optional).
After it, binary messages are keystrokes for the container's terminal and a text message
``{"resize": [rows, cols]}`` changes its size. The server sends ``{"info": "..."}`` first, the
terminal's output as binary messages, and last ``{"exit_status": N, "timed_out": false,
"duration": 1.2}`` (or ``{"error": "..."}``) as text before it closes. Closing the websocket
stops the command.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from flask import Response

from slipway.adapters import Adapters
from slipway.api import websocket
from slipway.api.context import adapters, current_user, db, settings
from slipway.api.websocket import ConnectionClosed, MessageSocket
from slipway.config import Settings
from slipway.models import App
from slipway.runtime.base import Terminal
from slipway.services import apps, oneoff
from slipway.services.errors import Invalid, SlipwayError

log = logging.getLogger(__name__)

START_TIMEOUT = 30.0  # seconds for the client's first message
POLL = 0.2  # seconds between looks at whether the command's output has ended


def run_terminal(name: str) -> Response:
    app = apps.get_app(db(), current_user(), name)
    socket = websocket.accept()
    try:
        serve(socket, adapters(), settings(), lambda command: _plan(app, command))
    finally:
        websocket.close_quietly(socket)
    return websocket.taken_over()


def _plan(app: App, command: object) -> oneoff.RunPlan:
    plan = oneoff.plan_run(db(), adapters(), app, command)
    db().close()  # a terminal may stay open for an hour: hold no database connection meanwhile
    return plan


def serve(
    socket: MessageSocket,
    adapters: Adapters,
    settings: Settings,
    plan_for: Callable[[object], oneoff.RunPlan],
) -> None:
    """One command with a terminal on ``socket``: from the first message to the exit status."""
    try:
        start = _first_message(socket)
        terminal = oneoff.TerminalRequest.parse(
            start.get("rows"), start.get("cols"), start.get("term")
        )
        plan = plan_for(start.get("command"))
        socket.send(_json({"info": oneoff.describe(plan)}))
        result = oneoff.execute_with_terminal(
            adapters, settings, plan, terminal, lambda attached: relay(socket, attached)
        )
        socket.send(
            _json(
                {
                    "exit_status": result.exit_status,
                    "timed_out": result.timed_out,
                    "duration": round(result.duration, 3),
                }
            )
        )
    except ConnectionClosed:
        pass  # its user went away: the command was stopped and removed
    except SlipwayError as exc:
        _send_quietly(socket, {"error": str(exc)})
    except Exception as exc:  # the websocket is open: say it there, not as a 500
        log.exception("one-off run with a terminal failed")
        _send_quietly(socket, {"error": f"The one-off run failed: {exc}"})


def relay(socket: MessageSocket, terminal: Terminal) -> None:
    """Keystrokes and resizes to the terminal, its output to the socket, until the output
    ends (the command exited) or the socket closes (its user went away)."""
    output = threading.Thread(
        target=_relay_output, args=(terminal, socket), name="terminal-output", daemon=True
    )
    output.start()
    with contextlib.suppress(ConnectionClosed):
        while output.is_alive():
            message = socket.receive(timeout=POLL)
            if isinstance(message, bytes):
                terminal.write(message)
            elif isinstance(message, str):
                size = parse_resize(message)
                if size is not None:
                    terminal.resize(*size)


def _relay_output(terminal: Terminal, socket: MessageSocket) -> None:
    with contextlib.suppress(ConnectionClosed, OSError):
        while data := terminal.read():
            socket.send(data)


def parse_resize(message: str) -> tuple[int, int] | None:
    """``(rows, cols)`` from ``{"resize": [rows, cols]}``; None for anything else."""
    with contextlib.suppress(ValueError, TypeError, KeyError, SlipwayError):
        rows, cols = json.loads(message)["resize"]
        size = oneoff.TerminalRequest.parse(rows, cols).size
        return size.rows, size.cols
    return None


def _first_message(socket: MessageSocket) -> dict[str, Any]:
    message = socket.receive(timeout=START_TIMEOUT)
    try:
        start = json.loads(message) if isinstance(message, str) else None
    except ValueError:
        start = None
    if not isinstance(start, dict):
        raise Invalid(
            'Send the command and the terminal\'s size first, as JSON text: {"command": "bash", '
            '"rows": 24, "cols": 80}.'
        )
    return start


def _send_quietly(socket: MessageSocket, data: dict[str, Any]) -> None:
    with contextlib.suppress(ConnectionClosed, OSError):
        socket.send(_json(data))


def _json(data: dict[str, Any]) -> str:
    return json.dumps(data)
