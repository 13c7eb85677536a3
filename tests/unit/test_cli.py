"""The CLI against a tiny real HTTP server (stdlib, in a thread) standing in for the API."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import click
import pytest
from click.testing import CliRunner, Result

from slipway.cli.main import cli
from tests.helpers import free_port


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


# A route answers (status, JSON body) or (status, Text(lines)), or is a function of the request.
Answer = tuple[int, Any]
Route = Answer | Callable[[Seen], Answer]


@dataclass
class FakeApi:
    url: str = ""
    token: str = "good-token"
    routes: dict[tuple[str, str], Route] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    def on(self, method: str, path: str, answer: Route) -> None:
        self.routes[(method, "/api/v1" + path)] = answer

    def last(self, method: str, path: str) -> Seen:
        return [s for s in self.seen if s.method == method and s.path == "/api/v1" + path][-1]


def _handler(api: FakeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            seen = Seen(
                self.command,
                parts.path,
                parse_qs(parts.query),
                dict(self.headers.items()),
                self.rfile.read(length),
            )
            api.seen.append(seen)
            if self.headers.get("Authorization") != f"Bearer {api.token}":
                return self._json(401, {"error": "That token is not valid."})
            route = api.routes.get((self.command, parts.path))
            if route is None:
                return self._json(404, {"error": f"No route {parts.path}."})
            status, body = route(seen) if callable(route) else route
            if isinstance(body, Text):
                return self._text(status, body.lines)
            return self._json(status, body)

        def _json(self, status: int, body: Any) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _text(self, status: int, lines: Any) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for line in lines:
                data = (line + "\n").encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")

        do_GET = do_POST = do_PATCH = do_DELETE = _serve

    return Handler


@dataclass
class Text:
    """A plain-text answer streamed line by line (chunked), as the log endpoints do."""

    lines: list[str]


def start_fake_api() -> tuple[FakeApi, ThreadingHTTPServer]:
    api = FakeApi()
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(api))
    server.daemon_threads = True
    api.url = f"http://127.0.0.1:{port}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return api, server


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeApi]:
    """A fake API the CLI is pointed at through SLIPWAY_URL/SLIPWAY_TOKEN, in an empty cwd."""
    fake, server = start_fake_api()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("SLIPWAY_URL", fake.url)
    monkeypatch.setenv("SLIPWAY_TOKEN", fake.token)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    yield fake
    server.shutdown()
    server.server_close()


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def git(*args: str) -> None:
    subprocess.run(["git", *args], check=True, capture_output=True, timeout=60)


def make_git_repo(remote: str | None = None) -> None:
    git("init", "-q", "-b", "main")
    git("config", "user.email", "dev@example.com")
    git("config", "user.name", "Dev")
    if remote:
        git("remote", "add", "slipway", remote)


HELLO = {"name": "hello", "state": "running", "release": {"version": 3}, "url": "http://h.test"}


# ----------------------------------------------------------------------------- login


def test_login_checks_the_token_and_stores_it_private(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SLIPWAY_URL")
    monkeypatch.delenv("SLIPWAY_TOKEN")
    api.on("GET", "/apps", (200, []))
    result = run("login", "--url", api.url + "/", "--token", api.token)
    assert result.exit_code == 0, result.output
    stored = tmp_path / "config" / "slipway" / "config.json"
    assert json.loads(stored.read_text()) == {"url": api.url, "token": api.token}
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert api.last("GET", "/apps").headers["Authorization"] == f"Bearer {api.token}"
    # Later commands use the stored login.
    api.on("GET", "/apps", (200, [HELLO]))
    assert "hello" in run("apps").output


def test_login_prompts_and_refuses_a_wrong_token(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SLIPWAY_TOKEN")
    result = CliRunner().invoke(cli, ["login"], input=f"{api.url}\nwrong\n")
    assert result.exit_code == 1
    assert "error: That token is not valid." in result.output
    assert not (tmp_path / "config" / "slipway" / "config.json").exists()


def test_environment_overrides_the_stored_login(api: FakeApi, tmp_path: Path) -> None:
    stored = tmp_path / "config" / "slipway" / "config.json"
    stored.parent.mkdir(parents=True)
    stored.write_text(json.dumps({"url": "http://127.0.0.1:9", "token": "stale"}))
    api.on("GET", "/apps", (200, []))
    result = run("apps")
    assert result.exit_code == 0
    assert "You have no apps yet." in result.output


def test_not_logged_in_is_one_sentence(api: FakeApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLIPWAY_URL")
    monkeypatch.delenv("SLIPWAY_TOKEN")
    result = run("apps")
    assert result.exit_code == 1
    assert result.output.startswith("error: not logged in")


def test_unreachable_api_is_one_clear_sentence(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLIPWAY_URL", f"http://127.0.0.1:{free_port()}")
    result = run("apps")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: cannot reach the Slipway API at {os.environ['SLIPWAY_URL']}: is it running?"
    ]


# ----------------------------------------------------------------------------- apps


def test_apps_lists_a_table_or_json(api: FakeApi) -> None:
    api.on("GET", "/apps", (200, [HELLO, {"name": "other", "state": "new", "url": None}]))
    table = run("apps").output.splitlines()
    assert table[0].split() == ["NAME", "STATE", "RELEASE", "URL"]
    assert table[1].split() == ["hello", "running", "v3", "http://h.test"]
    assert table[2].split() == ["other", "new", "-", "-"]
    assert json.loads(run("apps:list", "--json").output)[0]["name"] == "hello"


def test_apps_create_with_colon_alias_adds_the_git_remote(api: FakeApi) -> None:
    make_git_repo()
    api.on("POST", "/apps", (201, HELLO))
    result = run("apps:create", "hello")
    assert result.exit_code == 0, result.output
    assert api.last("POST", "/apps").json() == {"name": "hello"}
    remote = subprocess.run(
        ["git", "remote", "get-url", "slipway"], capture_output=True, text=True, check=True
    )
    assert remote.stdout.strip() == f"{api.url}/git/hello.git"
    assert "Git remote slipway" in result.output


def test_api_errors_are_shown_as_their_sentence(api: FakeApi) -> None:
    api.on("POST", "/apps", (409, {"error": "An app named hello already exists."}))
    result = run("apps", "create", "hello")
    assert result.exit_code == 1
    assert result.output.strip() == "error: An app named hello already exists."


def test_the_app_defaults_to_the_slipway_git_remote(api: FakeApi) -> None:
    make_git_repo(remote="http://127.0.0.1:7000/git/hello.git")
    api.on("GET", "/apps/hello", (200, dict(HELLO, instances=[])))
    result = run("apps:info")
    assert result.exit_code == 0, result.output
    assert "url:" in result.output and "http://h.test" in result.output


def test_without_app_or_remote_the_command_says_so(api: FakeApi) -> None:
    result = run("releases")
    assert result.exit_code == 1
    assert "no app given" in result.output


def test_destroy_asks_for_the_name(api: FakeApi) -> None:
    api.on("DELETE", "/apps/hello", (204, None))
    refused = run("apps:destroy", "-a", "hello", input="nope\n")
    assert refused.exit_code == 1
    assert not [s for s in api.seen if s.method == "DELETE"]
    confirmed = run("apps:destroy", "-a", "hello", input="hello\n")
    assert confirmed.exit_code == 0, confirmed.output
    assert run("apps", "destroy", "-a", "hello", "--confirm", "hello").exit_code == 0
    assert len([s for s in api.seen if s.method == "DELETE"]) == 2


# ----------------------------------------------------------------------------- config


def test_config_set_get_unset(api: FakeApi) -> None:
    api.on("PATCH", "/apps/hello/config", lambda seen: (200, {"A": "1"}))
    result = run("config:set", "-a", "hello", "A=1", "B=x=y", "--no-wait")
    assert result.exit_code == 0, result.output
    assert api.last("PATCH", "/apps/hello/config").json() == {"A": "1", "B": "x=y"}
    run("config", "unset", "-a", "hello", "B", "--no-wait")
    assert api.last("PATCH", "/apps/hello/config").json() == {"B": None}
    api.on("GET", "/apps/hello/config", (200, {"A": "1"}))
    assert run("config:get", "-a", "hello", "A").output == "1\n"
    missing = run("config:get", "-a", "hello", "NOPE")
    assert missing.exit_code == 1 and "NOPE is not set" in missing.output
    assert json.loads(run("config", "-a", "hello", "--json").output) == {"A": "1"}


def test_config_set_waits_until_the_new_release_serves(api: FakeApi) -> None:
    api.on("PATCH", "/apps/hello/config", (200, {"A": "1"}))
    api.on("GET", "/apps/hello/releases", (200, [{"version": 3}, {"version": 2}]))
    api.on("GET", "/apps/hello/events", (200, []))
    views = iter([{"release": {"version": 2}}, {"release": {"version": 3}, "url": "http://h"}])
    api.on("GET", "/apps/hello", lambda seen: (200, next(views)))
    result = run("config:set", "-a", "hello", "A=1")
    assert result.exit_code == 0, result.output
    assert len([s for s in api.seen if s.method == "GET" and s.path == "/api/v1/apps/hello"]) == 2
    assert "v3 is live" in result.output


def test_a_rollback_whose_roll_fails_says_why(api: FakeApi) -> None:
    api.on("POST", "/apps/hello/rollback", (201, {"version": 4}))
    api.on("GET", "/apps/hello", (200, {"release": {"version": 3}}))
    failed = {
        "type": "deploy_failed",
        "message": "v4 was not rolled out: no port",
        "data": {"version": 4},
    }
    api.on("GET", "/apps/hello/events", (200, [failed]))
    result = run("rollback", "-a", "hello", "v2")
    assert result.exit_code == 1
    assert "v4 was not rolled out: no port" in result.output


def test_config_set_refuses_a_pair_without_equals(api: FakeApi) -> None:
    result = run("config:set", "-a", "hello", "JUSTKEY")
    assert result.exit_code == 1
    assert not [s for s in api.seen if s.method == "PATCH"]


# ----------------------------------------------------------------------------- releases, ps


def test_releases_and_rollback_to_the_previous_one(api: FakeApi) -> None:
    history = [{"version": 3, "description": "Deploy"}, {"version": 2, "description": "Config"}]
    api.on("GET", "/apps/hello/releases", (200, history))
    api.on("POST", "/apps/hello/rollback", (201, {"version": 4}))
    assert run("releases", "-a", "hello").output.splitlines()[1].split()[0] == "v3"
    result = run("rollback", "-a", "hello", "--no-wait")
    assert result.exit_code == 0, result.output
    assert api.last("POST", "/apps/hello/rollback").json() == {"version": 2}
    assert "now v4" in result.output
    run("releases:rollback", "-a", "hello", "v1", "--no-wait")
    assert api.last("POST", "/apps/hello/rollback").json() == {"version": 1}


def test_scale_and_its_ps_alias(api: FakeApi) -> None:
    api.on("POST", "/apps/hello/scale", lambda seen: (200, seen.json()))
    result = run("ps:scale", "-a", "hello", "web=2", "worker=1")
    assert result.exit_code == 0, result.output
    assert api.last("POST", "/apps/hello/scale").json() == {"web": 2, "worker": 1}
    assert "web=2 worker=1" in result.output
    assert run("scale", "-a", "hello", "web=two").exit_code == 1


def test_ps_lists_instances(api: FakeApi) -> None:
    process = {"name": "web.1", "state": "RUNNING", "pid": 42, "uptime": "5s", "release": 3}
    listed = {"formation": {"web": 1}, "processes": [dict(process, instance_state="live")]}
    api.on("GET", "/apps/hello/processes", (200, listed))
    lines = run("ps", "-a", "hello").output.splitlines()
    assert lines[0] == "Formation: web=1"
    assert lines[1].split() == ["NAME", "STATE", "PID", "UPTIME", "RELEASE", "INSTANCE_STATE"]
    assert lines[2].split() == ["web.1", "RUNNING", "42", "5s", "3", "live"]


def test_logs_tail_and_url(api: FakeApi) -> None:
    api.on("GET", "/apps/hello/logs", (200, Text(["one", "two"])))
    result = run("logs", "-a", "hello", "--tail", "2")
    assert result.output == "one\ntwo\n"
    assert api.last("GET", "/apps/hello/logs").query["tail"] == ["2"]
    api.on("GET", "/apps/hello", (200, HELLO))
    assert run("url", "-a", "hello").output == "http://h.test\n"


# ----------------------------------------------------------------------------- deploy


def deploy_routes(api: FakeApi, final: dict[str, Any]) -> None:
    api.on("POST", "/apps/hello/deploys", (202, {"id": 7, "state": "queued"}))
    api.on("GET", "/apps/hello/deploys/7/log", (200, Text(["-----> Building", "built"])))
    api.on("GET", "/apps/hello/deploys/7", (200, dict({"id": 7}, **final)))
    api.on("GET", "/apps/hello", (200, HELLO))


def uploaded_names(api: FakeApi) -> list[str]:
    body = api.last("POST", "/apps/hello/deploys").body
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        return sorted(tar.getnames())


def test_deploy_uploads_follows_the_log_and_prints_the_url(api: FakeApi) -> None:
    deploy_routes(api, {"state": "succeeded"})
    Path("app.py").write_text("print('hi')\n")
    Path("secret.env").write_text("X=1\n")
    Path(".slipwayignore").write_text("*.env\n")
    result = run("deploy", "-a", "hello")
    assert result.exit_code == 0, result.output
    seen = api.last("POST", "/apps/hello/deploys")
    assert seen.headers["Content-Type"] == "application/gzip"
    assert uploaded_names(api) == [".slipwayignore", "app.py"]
    assert "-----> Building\nbuilt\n" in result.output
    assert result.output.strip().endswith("Deployed hello: http://h.test")


def test_deploy_in_a_git_tree_honours_gitignore_and_slipwayignore(api: FakeApi) -> None:
    make_git_repo(remote="http://127.0.0.1:7000/git/hello.git")
    deploy_routes(api, {"state": "succeeded"})
    Path(".gitignore").write_text("node_modules/\n*.log\n")
    Path(".slipwayignore").write_text("docs/\n")
    for name in ["app.py", "debug.log", "node_modules/x/index.js", "docs/a.md", "lib/b.py"]:
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        Path(name).write_text("x\n")
    git("add", "app.py", ".gitignore")
    git("commit", "-qm", "first")
    result = run("deploy")  # the app comes from the git remote
    assert result.exit_code == 0, result.output
    assert uploaded_names(api) == [".gitignore", ".slipwayignore", "app.py", "lib/b.py"]


def test_a_failed_deploy_exits_non_zero_with_the_reason(api: FakeApi) -> None:
    deploy_routes(api, {"state": "failed", "error": "The build exited with status 1."})
    Path("app.py").write_text("x\n")
    result = run("deploy", "-a", "hello")
    assert result.exit_code == 1
    assert "built\n" in result.output
    assert "error: deploy 7 failed: The build exited with status 1." in result.output


def test_deploys_cancel_picks_the_running_deploy_or_the_one_given(api: FakeApi) -> None:
    listed = [
        {"id": 9, "state": "building", "source_kind": "git"},
        {"id": 8, "state": "succeeded", "source_kind": "git"},
    ]
    api.on("GET", "/apps/hello/deploys", (200, listed))
    api.on("POST", "/apps/hello/deploys/9/cancel", (200, {"id": 9, "state": "cancelled"}))
    api.on(
        "POST",
        "/apps/hello/deploys/8/cancel",
        (
            409,
            {
                "error": "Deploy 8 already ended (succeeded); "
                "only a queued or running deploy can be cancelled."
            },
        ),
    )
    result = run("deploys:cancel", "-a", "hello")
    assert result.exit_code == 0, result.output
    assert "Deploy 9 of hello is cancelled" in result.output
    assert api.last("POST", "/apps/hello/deploys/9/cancel")
    refused = run("deploys:cancel", "-a", "hello", "8")
    assert refused.exit_code == 1 and "Deploy 8 already ended (succeeded)" in refused.output
    assert run("deploys", "-a", "hello").output.splitlines()[1].split()[:2] == ["9", "building"]


def test_deploys_cancel_without_a_running_deploy_says_so(api: FakeApi) -> None:
    api.on("GET", "/apps/hello/deploys", (200, [{"id": 8, "state": "cancelled"}]))
    result = run("deploys:cancel", "-a", "hello")
    assert result.exit_code == 1
    assert "hello has no queued or running deploy to cancel" in result.output


def test_deploy_of_an_empty_directory_is_refused(api: FakeApi) -> None:
    result = run("deploy", "-a", "hello")
    assert result.exit_code == 1
    assert "nothing to deploy" in result.output


# ----------------------------------------------------------------------------- help


def all_commands() -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    for name, command in cli.commands.items():
        if name == "server":
            continue
        found.append((name,))
        if isinstance(command, click.Group):
            found += [(name, sub) for sub in command.commands]
    return found


@pytest.mark.parametrize("words", all_commands(), ids=" ".join)
def test_every_command_has_help_with_an_example(words: tuple[str, ...]) -> None:
    result = run(*words, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output


def test_git_remote_sets_a_credential_helper_that_answers_with_the_token(api: FakeApi) -> None:
    make_git_repo()
    api.on("GET", "/apps/hello", (200, HELLO))
    assert run("git:remote", "-a", "hello").exit_code == 0
    helper = subprocess.run(
        ["git", "config", f"credential.{api.url}.helper"], capture_output=True, text=True
    ).stdout
    assert helper.strip().endswith("git:credential")
    host = api.url.removeprefix("http://")
    asked = run("git:credential", "get", input=f"protocol=http\nhost={host}\n\n")
    assert asked.output == f"username=slipway\npassword={api.token}\n"
    other = run("git:credential", "get", input="protocol=https\nhost=example.com\n\n")
    assert other.output == ""


def test_a_proxy_in_the_environment_is_not_used_for_loopback(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(var, dead)
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    api.on("GET", "/apps", (200, [HELLO]))
    result = run("apps")
    assert result.exit_code == 0, result.output
    assert "hello" in result.output


def test_apps_update_sends_only_what_was_given(api: FakeApi) -> None:
    view = {
        "name": "hello",
        "memory": 268435456,
        "health_check_path": None,
        "deploy_branch": "main",
    }
    api.on("PATCH", "/apps/hello", lambda seen: (200, view))
    result = run("apps:update", "-a", "hello", "--memory", "256M", "--health-check", "none")
    assert result.exit_code == 0, result.output
    assert api.last("PATCH", "/apps/hello").json() == {"memory": "256M", "health_check_path": None}
    assert "268435456" in result.output
    assert run("apps:update", "-a", "hello").exit_code == 1  # nothing to change


def test_users_create_prints_the_token_once_and_tokens_create(api: FakeApi) -> None:
    made = {"username": "alice", "is_admin": False, "token": "slw_first"}
    api.on("POST", "/users", lambda seen: (201, made))
    result = run("users:create", "alice")
    assert result.exit_code == 0, result.output
    assert api.last("POST", "/users").json() == {"username": "alice", "is_admin": False}
    assert result.output.splitlines()[-1] == "slw_first"
    api.on("POST", "/user/tokens", (201, {"token": "slw_ci", "name": "ci"}))
    assert run("tokens:create", "--name", "ci").output == "slw_ci\n"
    api.on("GET", "/users", (403, {"error": "Only an admin can list users."}))
    refused = run("users")
    assert refused.exit_code == 1 and "Only an admin" in refused.output
