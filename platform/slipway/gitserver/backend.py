"""Running the real `git http-backend` as a CGI program and streaming its answer.

The request body is pumped into the program from a thread while its output is streamed back,
so neither side waits for the other. Gzip request bodies are passed through with
``HTTP_CONTENT_ENCODING``: git http-backend inflates them itself.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
MAX_HEADER_BYTES = 64 * 1024
# Passed from the API's own environment so git finds itself and its locale.
INHERITED = ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR")


class NoAnswer(RuntimeError):
    """git http-backend ended (or babbled) without a complete CGI answer."""


@dataclass
class CgiRequest:
    method: str
    path_info: str  # "/<app>.git/info/refs" etc., below GIT_PROJECT_ROOT
    query_string: str
    content_type: str
    content_length: int | None
    content_encoding: str
    git_protocol: str
    remote_user: str
    remote_addr: str
    body: IO[bytes]


@dataclass
class CgiResponse:
    status: int
    headers: list[tuple[str, str]]
    body: Iterator[bytes]


def cgi_environment(req: CgiRequest, project_root: str, extra: dict[str, str]) -> dict[str, str]:
    env = {k: os.environ[k] for k in INHERITED if k in os.environ}
    env |= {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "GIT_PROJECT_ROOT": project_root,
        "GIT_HTTP_EXPORT_ALL": "1",
        "PATH_INFO": req.path_info,
        "QUERY_STRING": req.query_string,
        "REQUEST_METHOD": req.method,
        "CONTENT_TYPE": req.content_type,
        "REMOTE_USER": req.remote_user,
        "REMOTE_ADDR": req.remote_addr,
    }
    if req.content_length is not None:
        env["CONTENT_LENGTH"] = str(req.content_length)
    if req.content_encoding:
        env["HTTP_CONTENT_ENCODING"] = req.content_encoding
    if req.git_protocol:
        env["HTTP_GIT_PROTOCOL"] = req.git_protocol
    return env | extra


def _pump_body(body: IO[bytes], sink: IO[bytes]) -> None:
    try:
        while chunk := body.read(CHUNK):
            sink.write(chunk)
    except (BrokenPipeError, OSError, ValueError) as exc:
        # git stops reading when it rejects a request; its answer says why.
        log.debug("request body not fully consumed by git: %s", exc)
    finally:
        try:
            sink.close()
        except OSError:
            pass


def _drain_stderr(stream: IO[bytes]) -> None:
    for line in stream:
        log.info("git http-backend: %s", line.decode("utf-8", "replace").rstrip())


def _read_headers(stdout: IO[bytes]) -> tuple[int, list[tuple[str, str]]]:
    """The CGI header block: ``Status:`` becomes the status, the rest are headers."""
    status, size = 200, 0
    headers: list[tuple[str, str]] = []
    while True:
        line = stdout.readline()
        size += len(line)
        if not line or size > MAX_HEADER_BYTES:
            raise NoAnswer("git http-backend ended without a complete answer")
        text = line.decode("latin-1").rstrip("\r\n")
        if not text:
            return status, headers
        name, _, value = text.partition(":")
        if name.lower() == "status":
            status = int(value.strip().split()[0])
        else:
            headers.append((name.strip(), value.strip()))


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_http_backend(
    req: CgiRequest,
    project_root: str,
    extra_env: dict[str, str],
    timeout: float,
    on_finish: Callable[[], None] = lambda: None,
) -> CgiResponse:
    """Start git http-backend for one request; the answer's body streams as git writes it.

    ``on_finish`` runs once the program has ended (or the client went away): it releases locks.
    """
    proc = subprocess.Popen(
        ["git", "http-backend"],
        env=cgi_environment(req, project_root, extra_env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: the hook and git die with it
    )
    assert proc.stdin and proc.stdout and proc.stderr
    # A push runs the deploy inside the hook; past the timeout it is cut off, not left hanging.
    watchdog = threading.Timer(timeout, _kill_group, args=(proc,))
    watchdog.daemon = True
    watchdog.start()
    threading.Thread(target=_pump_body, args=(req.body, proc.stdin), daemon=True).start()
    threading.Thread(target=_drain_stderr, args=(proc.stderr,), daemon=True).start()

    def finish() -> None:
        watchdog.cancel()
        if proc.poll() is None:
            _kill_group(proc)
        proc.wait(timeout=30)
        on_finish()

    try:
        status, headers = _read_headers(proc.stdout)
    except BaseException:
        finish()
        raise

    def body() -> Iterator[bytes]:
        try:
            assert proc.stdout
            while chunk := proc.stdout.read1(CHUNK):  # type: ignore[attr-defined]
                yield chunk
            proc.wait(timeout=30)
        finally:
            finish()

    return CgiResponse(status, headers, body())
