#!/usr/bin/env python3
"""Navi: a supervisord event listener that writes one JSON file per crash or OOM.

It runs inside every run image as ``[eventlistener:navi]`` with ``events=PROCESS_STATE``. On an
unexpected exit, a BACKOFF or a FATAL it writes ``<time_ns>-<process>-<type>.json`` into the
notifications directory; the platform's collector picks the files up from the host side. A
program killed (SIGKILL) while the container's OOM-kill counter rose is an ``oom``; its note
carries the counter (``oom_kills``), the number the platform files that kill under. OOM kills of
processes supervisord does not run (workers, children) are counted by the platform itself.

It must never block supervisord, so every event is answered ``RESULT 2\\nOK`` even when the work
fails (the reason goes to stderr). Standard library only: it runs on the image's python3.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

NOTIFY_STATES = {"PROCESS_STATE_EXITED", "PROCESS_STATE_FATAL", "PROCESS_STATE_BACKOFF"}
DEFAULTS = {
    "NAVI_NOTIFICATIONS_DIR": "/mnt/notifications",
    "NAVI_LOG_FILE": "/mnt/log/app.log",
    "NAVI_CGROUP_V1_OOM": "/sys/fs/cgroup/memory/memory.oom_control",
    "NAVI_CGROUP_V2_EVENTS": "/sys/fs/cgroup/memory.events",
}
LOG_TAIL_LINES = 20
LOG_TAIL_BYTES = 64 * 1024
RPC_TIMEOUT = 1.0  # seconds; supervisord is asynchronous, but navi must answer quickly anyway
EXIT_LINE = re.compile(
    r"exited: (?P<name>\S+) \((?:exit status (?P<status>-?\d+)|terminated by (?P<signal>SIG\w+))"
)


# ---------------------------------------------------------------------------------------------
# The supervisord listener protocol
# ---------------------------------------------------------------------------------------------


def parse_tokens(line: str) -> dict[str, str]:
    """``"a:1 b:2"`` -> ``{"a": "1", "b": "2"}`` (the format of headers and payloads)."""
    pairs = (token.split(":", 1) for token in line.split() if ":" in token)
    return {key: value for key, value in pairs}


def read_event(stdin: IO[bytes]) -> tuple[dict[str, str], str] | None:
    """One header and its payload, or None at end of input."""
    line = stdin.readline()
    if not line:
        return None
    header = parse_tokens(line.decode("utf-8", "replace"))
    length = int(header.get("len", "0"))
    payload = stdin.read(length) if length > 0 else b""
    return header, payload.decode("utf-8", "replace")


def answer(stdout: IO[bytes], message: bytes) -> None:
    stdout.write(message)
    stdout.flush()


def main_loop(
    stdin: IO[bytes],
    stdout: IO[bytes],
    stderr: IO[str],
    navi: Navi,
    max_events: int | None = None,
) -> int:
    """Answer events until stdin closes (or ``max_events``); returns how many were handled."""
    handled = 0
    while max_events is None or handled < max_events:
        answer(stdout, b"READY\n")
        try:
            event = read_event(stdin)
        except Exception as exc:  # a malformed header must not stop the listener
            log(stderr, f"cannot read event: {exc!r}")
            answer(stdout, b"RESULT 2\nOK")
            handled += 1
            continue
        if event is None:
            break
        try:
            navi.handle(*event)
        except Exception as exc:  # anything at all: supervisord still gets its answer
            log(stderr, f"cannot handle event {event[0].get('eventname')}: {exc!r}")
        answer(stdout, b"RESULT 2\nOK")
        handled += 1
    return handled


def log(stderr: IO[str], message: str) -> None:
    try:
        stderr.write(f"navi: {message}\n")
        stderr.flush()
    except Exception:  # stderr itself may be gone; there is nowhere else to say it
        pass


# ---------------------------------------------------------------------------------------------
# What navi looks at: cgroup OOM counter, the app log, supervisord's own log
# ---------------------------------------------------------------------------------------------


def read_oom_kills(v1_path: str, v2_path: str) -> int | None:
    """The container's OOM-kill counter (cgroup v1 or v2), or None when neither is readable."""
    for path in (v1_path, v2_path):
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value)
    return None


def log_tail(path: str, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last lines of a log file, reading at most LOG_TAIL_BYTES from its end."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - LOG_TAIL_BYTES))
            data = f.read()
    except OSError:
        return []
    return data.decode("utf-8", "replace").splitlines()[-lines:]


def supervisor_proxy(server_url: str, timeout: float = RPC_TIMEOUT) -> Any:
    """An XML-RPC proxy to supervisord from ``SUPERVISOR_SERVER_URL`` (unix:// or http://).

    http.client and xmlrpc.client are imported here, on the first crash, not at start: they
    would cost an idle Navi about 3 MB in every instance.
    """
    import http.client
    import xmlrpc.client

    class UnixStreamHTTPConnection(http.client.HTTPConnection):
        def __init__(self, socket_path: str, timeout: float) -> None:
            super().__init__("localhost", timeout=timeout)
            self.socket_path = socket_path

        def connect(self) -> None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            sock.connect(self.socket_path)
            self.sock = sock

    class UnixStreamTransport(xmlrpc.client.Transport):
        def __init__(self, socket_path: str, timeout: float) -> None:
            super().__init__()
            self.socket_path = socket_path
            self.timeout = timeout

        def make_connection(self, host: Any) -> http.client.HTTPConnection:
            return UnixStreamHTTPConnection(self.socket_path, self.timeout)

    if server_url.startswith("unix://"):
        transport = UnixStreamTransport(server_url[len("unix://") :], timeout)
        return xmlrpc.client.ServerProxy("http://localhost/RPC2", transport=transport)
    return xmlrpc.client.ServerProxy(server_url.rstrip("/") + "/RPC2")


def exit_reason(supervisor_log: str, process: str) -> dict[str, Any]:
    """``{"exit_status": 1}`` or ``{"signal": "SIGKILL"}`` from supervisord's last exit line."""
    for line in reversed(supervisor_log.splitlines()):
        match = EXIT_LINE.search(line)
        if not match or match["name"] != process:
            continue
        if match["signal"]:
            return {"signal": match["signal"]}
        return {"exit_status": int(match["status"])}
    return {}


# ---------------------------------------------------------------------------------------------
# The notifier
# ---------------------------------------------------------------------------------------------


class Navi:
    def __init__(self, env: dict[str, str], proxy: Any = None) -> None:
        self.env = env
        self.own_name = env.get("SUPERVISOR_PROCESS_NAME", "navi")
        self.proxy = proxy  # made on the first crash (see supervisor_proxy) unless given
        self.oom_kills = self._oom_kills() or 0

    def setting(self, name: str) -> str:
        return self.env.get(name) or DEFAULTS[name]

    def _oom_kills(self) -> int | None:
        return read_oom_kills(
            self.setting("NAVI_CGROUP_V1_OOM"), self.setting("NAVI_CGROUP_V2_EVENTS")
        )

    def handle(self, header: dict[str, str], payload: str) -> Path | None:
        """Write a notification for a crash-like state change; the file, or None if ignored."""
        state = header.get("eventname", "")
        if state not in NOTIFY_STATES:
            return None
        fields = parse_tokens(payload)
        process = fields["processname"]
        if process in (self.own_name, "navi"):
            return None
        if state == "PROCESS_STATE_EXITED" and fields.get("expected") != "0":
            return None
        return self.write(self.notification(state, fields))

    def notification(self, state: str, fields: dict[str, str]) -> dict[str, Any]:
        now = time.time()
        kills = self._oom_kills()
        rose = kills is not None and kills > self.oom_kills
        if kills is not None:
            self.oom_kills = kills
        process = fields["processname"]
        details = self.exit_details(process)
        # The OOM killer sends SIGKILL: a program that exited with a status or another signal
        # crashed, even when the counter rose (a worker or child killed for memory before it;
        # the platform hears of those from the host).
        killed = details.get("signal", "SIGKILL") == "SIGKILL" and "exit_status" not in details
        note: dict[str, Any] = {
            "type": "oom" if rose and killed else "crash",
            "app": self.env.get("SLIPWAY_APP", ""),
            "instance": self.env.get("SLIPWAY_INSTANCE", ""),
            "process": process,
            "group": fields.get("groupname", process),
            "state": state.removeprefix("PROCESS_STATE_"),
            "from_state": fields.get("from_state"),
            "pid": int(fields["pid"]) if fields.get("pid", "").isdigit() else None,
            "time": now,
            "time_iso": datetime.fromtimestamp(now, UTC).isoformat(),
            "log_tail": log_tail(self.setting("NAVI_LOG_FILE")),
            "oom_kills": kills,
        }
        if fields.get("tries", "").isdigit():
            note["tries"] = int(fields["tries"])
        note |= details
        return note

    def exit_details(self, process: str) -> dict[str, Any]:
        """Exit status or signal from supervisord's log over RPC; empty when unreachable."""
        if self.proxy is None and self.env.get("SUPERVISOR_SERVER_URL"):
            self.proxy = supervisor_proxy(self.env["SUPERVISOR_SERVER_URL"])
        if self.proxy is None:
            return {}
        try:
            text = self.proxy.supervisor.readLog(-8192, 0)
        except Exception as exc:  # no RPC interface configured, a timeout: the file still goes
            log(sys.stderr, f"cannot read supervisord's log: {exc!r}")
            return {}
        return exit_reason(str(text), process)

    def write(self, note: dict[str, Any]) -> Path:
        """Write the file atomically: a hidden temporary file in the same dir, then rename."""
        directory = Path(self.setting("NAVI_NOTIFICATIONS_DIR"))
        safe_process = re.sub(r"[^A-Za-z0-9_.-]", "_", note["process"])
        target = directory / f"{time.time_ns()}-{safe_process}-{note['type']}.json"
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".navi-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(note, f)
            os.replace(tmp, target)
        except BaseException:
            os.unlink(tmp)
            raise
        return target


def main() -> int:
    navi = Navi(dict(os.environ))
    main_loop(sys.stdin.buffer, sys.stdout.buffer, sys.stderr, navi)
    return 0


if __name__ == "__main__":
    sys.exit(main())
