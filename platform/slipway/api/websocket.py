"""Websockets inside the API's ordinary request handling (a greenlet per request under gevent).

A view authenticates as usual, calls :func:`accept` to take the request's socket over, talks on
it until it is done, and answers :func:`taken_over` so that nothing more is written to the socket.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from typing import Any, Protocol

import simple_websocket
from flask import Response, request

from slipway.services.errors import Invalid

PING_INTERVAL = 25.0  # seconds; a client that stops answering pings is taken as gone

ConnectionClosed = simple_websocket.ConnectionClosed


class MessageSocket(Protocol):
    """What the views use of a websocket (a fake in tests)."""

    def send(self, data: bytes | str) -> None:
        """A binary message for bytes, a text message for a string."""

    def receive(self, timeout: float | None = None) -> bytes | str | None:
        """The next message; None when ``timeout`` passed first; ConnectionClosed once closed."""

    def close(self, reason: int | None = None, message: str | None = None) -> None: ...


def accept() -> MessageSocket:
    """Answer the request's websocket handshake; the request's socket is the websocket's now."""
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise Invalid("This call is a websocket: open it with a websocket client.")
    server: MessageSocket = simple_websocket.Server.accept(
        request.environ, ping_interval=PING_INTERVAL
    )
    return server


def close_quietly(socket: MessageSocket) -> None:
    try:
        socket.close()
    except (ConnectionClosed, OSError):
        pass  # the other side closed first


class _TakenOver(Response):
    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if "gunicorn.socket" in environ:
            # gunicorn's way to end a connection without writing a response on it.
            raise StopIteration
        if str(environ.get("SERVER_SOFTWARE", "")).startswith("gevent"):
            # gevent's pywsgi closes the connection quietly on a broken pipe and writes nothing.
            raise BrokenPipeError(errno.EPIPE, "the websocket has ended")
        return super().__call__(environ, start_response)  # Werkzeug's: onto a closed socket


def taken_over() -> Response:
    """The answer of a view whose request became a websocket: nothing is written."""
    return _TakenOver()
