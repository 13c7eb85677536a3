"""The pre-receive hook's own parts: what git and the API view hand it, HTTP answers, the log.

The hook against the real API, git and receive-pack is in tests/integration/test_git_http.py.
"""

from __future__ import annotations

import io
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from slipway.config import Settings
from slipway.gitserver import hook
from slipway.gitserver.handoff import hook_environment
from slipway.gitserver.hook import Answer, Api, Handoff, HookError, RefUpdate


def test_the_ref_lines_git_gives_are_parsed_and_odd_lines_skipped() -> None:
    main, tag = f"{'0' * 40} {'a' * 40} refs/heads/main", f"{'b' * 40} {'0' * 40} refs/tags/v1"
    text = f"{main}\n\nan odd line that is not one\n{tag}\n"
    assert hook.parse_updates(text) == [
        RefUpdate("0" * 40, "a" * 40, "refs/heads/main"),
        RefUpdate("b" * 40, "0" * 40, "refs/tags/v1"),
    ]


def test_the_handoff_is_read_back_and_missing_without_the_api() -> None:
    settings = Settings(api_bind="0.0.0.0:7100", router_bind="127.0.0.1:8080")
    environ = hook_environment(settings, "hello", "main", "tok", 1200)
    assert Handoff.from_environment(environ) == Handoff(
        api_url="http://127.0.0.1:7100",  # a wildcard bind is reached on loopback
        token="tok",
        app="hello",
        branch="main",
        app_url="http://hello.localhost:8080",
        timeout=1200.0,
    )
    assert Path(environ["SLIPWAY_GIT_HOOK"]) == Path(hook.__file__).resolve()
    assert Handoff.from_environment({}) is None
    assert Handoff.from_environment(environ | {hook.TIMEOUT_VAR: "soon"}) is None


def test_the_hook_imports_nothing_but_the_standard_library() -> None:
    """It runs under ``python -I -S``: no site-packages, so no Slipway, SQLAlchemy or Celery."""
    code = "import runpy, sys; runpy.run_path(sys.argv[1]); print(sorted(sys.modules))"
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, hook.__file__],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    modules = set(result.stdout.strip("[]\n").replace("'", "").split(", "))
    assert not {m for m in modules if m.split(".")[0] in ("slipway", "sqlalchemy", "celery")}
    assert "http.client" not in modules  # its email imports alone cost more than the hook


@pytest.mark.parametrize(
    ("url", "address"),
    [("http://127.0.0.1:7000", ("127.0.0.1", 7000)), ("http://[::1]:7000/", ("::1", 7000))],
)
def test_the_api_address_is_a_loopback_host_and_port(url: str, address: tuple[str, int]) -> None:
    assert Api(url, "tok", "hello")._address == address


@pytest.mark.parametrize("url", ["https://127.0.0.1:7000", "http://127.0.0.1", "unix:/run/api"])
def test_an_api_address_the_hook_cannot_use_is_refused(url: str) -> None:
    with pytest.raises(HookError, match="is not http://"):
        Api(url, "tok", "hello")


def answer_from(raw: bytes) -> Answer:
    """An Answer read from a real socket the server side wrote ``raw`` to and closed."""
    ours, theirs = socket.socketpair()
    theirs.sendall(raw)
    theirs.close()
    return Answer(ours)


def test_a_chunked_answer_is_dechunked() -> None:
    answer = answer_from(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"6\r\nline 1\r\n7;ext=1\r\n\nline 2\r\n0\r\n\r\n"
    )
    assert answer.status == 200
    assert list(answer.chunks()) == [b"line 1", b"\nline 2"]
    answer.close()


def test_a_json_answer_with_a_length_and_one_that_ends_with_the_connection() -> None:
    sized = answer_from(b'HTTP/1.1 202 ACCEPTED\r\nContent-Length: 9\r\n\r\n{"id": 7}')
    assert (sized.status, sized.json()) == (202, {"id": 7})
    sized.close()
    closed = answer_from(b'HTTP/1.0 404 NOT FOUND\r\n\r\n{"error": "No such app."}')
    assert (closed.status, closed.json()) == (404, {"error": "No such app."})
    closed.close()


def test_an_answer_that_is_not_http_is_a_clear_error() -> None:
    with pytest.raises(HookError, match="not HTTP"):
        answer_from(b"SSH-2.0-OpenSSH\r\n")


def test_a_chunked_answer_cut_short_is_a_clear_error() -> None:
    answer = answer_from(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nshort")
    with pytest.raises(HookError, match="ended half-way"):
        list(answer.chunks())
    answer.close()


class ReopenedLog:
    """An API whose log stream ends early twice (as the server's own limit makes it) before the
    deploy ends; each time the log starts again from the top."""

    def __init__(self) -> None:
        self.streams = [[b"one\ntw"], [b"one\n", b"two\nthr"], [b"one\ntwo\nthree\nlast"]]

    def log(self, deploy_id: int, deadline: float) -> Iterator[bytes]:
        yield from self.streams[0]

    def deploy(self, deploy_id: int) -> dict[str, Any]:
        self.streams.pop(0)
        return {"id": deploy_id, "state": "succeeded" if not self.streams else "building"}


def test_a_reopened_log_prints_every_line_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hook, "RETRY_PAUSE", 0)
    out = io.StringIO()
    deploy = hook.follow_deploy(ReopenedLog(), 3, timeout=30, out=out)  # type: ignore[arg-type]
    assert deploy["state"] == "succeeded"
    assert out.getvalue() == "one\ntwo\nthree\nlast\n"


def test_refs_other_than_the_deploy_branch_and_deletions_deploy_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    handoff = Handoff("http://127.0.0.1:1", "tok", "hello", "main", "http://hello.localhost", 60)
    updates = [
        RefUpdate("0" * 40, "a" * 40, "refs/heads/feature"),
        RefUpdate("a" * 40, "0" * 40, "refs/heads/main"),
    ]
    assert hook.run(updates, handoff) == 0
    assert capsys.readouterr().out == (
        "-----> refs/heads/feature: accepted, not deployed (only main deploys)\n"
        "-----> refs/heads/main deleted: nothing deployed, the app keeps running\n"
    )
