"""`slipway` run as a subprocess against the real API (in a thread, with a stand-in worker).

These pin the contract between the CLI and the API's JSON. The whole platform, real builds
included, is driven in `test_cli_platform.py`.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_git_http import GitServer, git, serve_api

pytestmark = pytest.mark.slow

SLIPWAY = str(Path(sys.executable).with_name("slipway"))


def slipway(
    *args: str, cwd: Path, server: GitServer, token: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": f"{Path(SLIPWAY).parent}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(cwd),
        "XDG_CONFIG_HOME": str(cwd / ".config"),
        "SLIPWAY_URL": server.url,
        "SLIPWAY_TOKEN": token or server.alice,
        "GIT_TERMINAL_PROMPT": "0",
    }
    result = subprocess.run(
        [SLIPWAY, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    if check and result.returncode != 0:
        raise AssertionError(f"slipway {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result


@pytest.fixture
def git_server(tmp_path: Path) -> Iterator[GitServer]:
    with serve_api(tmp_path) as server:
        yield server


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "site"
    path.mkdir()
    git("init", "-q", "-b", "main", cwd=path)
    (path / "app.py").write_text("print('hello')\n")
    (path / ".gitignore").write_text("*.log\n")
    (path / "debug.log").write_text("not uploaded\n")
    git("add", ".", cwd=path)
    git("commit", "-qm", "first", cwd=path)
    return path


def test_login_stores_a_private_file_and_refuses_a_bad_token(
    git_server: GitServer, tmp_path: Path
) -> None:
    bad = slipway(
        "login",
        "--url",
        git_server.url,
        "--token",
        "nope",
        cwd=tmp_path,
        server=git_server,
        check=False,
    )
    assert bad.returncode == 1
    assert bad.stderr.strip() == "error: That API token is not valid."
    slipway(
        "login",
        "--url",
        git_server.url,
        "--token",
        git_server.alice,
        cwd=tmp_path,
        server=git_server,
    )
    stored = tmp_path / ".config" / "slipway" / "config.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert json.loads(stored.read_text())["token"] == git_server.alice


def test_create_push_deploy_and_inspect(git_server: GitServer, repo: Path) -> None:
    created = slipway("apps:create", "site", cwd=repo, server=git_server)
    assert "Git remote slipway" in created.stdout

    # git push through the remote and credential helper that apps:create set up: no token typed.
    env = {
        "PATH": f"{Path(SLIPWAY).parent}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(repo),
        "SLIPWAY_URL": git_server.url,
        "SLIPWAY_TOKEN": git_server.alice,
        "GIT_TERMINAL_PROMPT": "0",
    }
    push = subprocess.run(
        ["git", "push", "slipway", "main"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert push.returncode == 0, push.stderr
    assert "remote: -----> Deployed: http://site.localhost" in push.stderr

    deployed = slipway("deploy", cwd=repo, server=git_server)  # the app comes from the remote
    assert "-----> Building 2 files" in deployed.stdout  # app.py and .gitignore, no debug.log
    assert deployed.stdout.strip().endswith("Deployed site: http://site.localhost")

    listed = json.loads(slipway("apps", "--json", cwd=repo, server=git_server).stdout)
    assert [a["name"] for a in listed] == ["hello", "site"]
    info = slipway("apps:info", cwd=repo, server=git_server).stdout
    assert "http://site.localhost" in info
    fields = dict(line.split(":", 1) for line in info.splitlines())
    assert fields["deploy_branch"].strip() == "main"
    assert fields["deploy_strategy"].strip() == "rolling"


def test_a_failed_deploy_exits_1_with_the_reason(git_server: GitServer, repo: Path) -> None:
    slipway("apps:create", "site", cwd=repo, server=git_server)
    (repo / "FAIL").write_text("")
    result = slipway("deploy", "-a", "site", cwd=repo, server=git_server, check=False)
    assert result.returncode == 1
    assert "build step failed" in result.stdout
    assert "failed: The build exited with status 1." in result.stderr


def test_config_round_trip(git_server: GitServer, tmp_path: Path) -> None:
    slipway("apps:create", "site", cwd=tmp_path, server=git_server)
    slipway("config:set", "-a", "site", "GREETING=hi there", "X=1", cwd=tmp_path, server=git_server)
    got = slipway("config:get", "-a", "site", "GREETING", cwd=tmp_path, server=git_server)
    assert got.stdout == "hi there\n"
    slipway("config:unset", "-a", "site", "X", cwd=tmp_path, server=git_server)
    listed = slipway("config", "-a", "site", "--json", cwd=tmp_path, server=git_server)
    assert json.loads(listed.stdout) == {"GREETING": "hi there"}


def test_errors_are_one_sentence_and_exit_1(git_server: GitServer, tmp_path: Path) -> None:
    missing = slipway("apps:info", "-a", "nope", cwd=tmp_path, server=git_server, check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error: There is no app named 'nope'."
    slipway("apps:create", "site", cwd=tmp_path, server=git_server)
    other = slipway(
        "apps:info",
        "-a",
        "site",
        cwd=tmp_path,
        server=git_server,
        token=git_server.bob,
        check=False,
    )
    assert other.stderr.strip() == "error: There is no app named 'site'."


def test_destroy_needs_the_name(git_server: GitServer, tmp_path: Path) -> None:
    slipway("apps:create", "site", cwd=tmp_path, server=git_server)
    wrong = slipway(
        "apps:destroy", "-a", "site", "--confirm", "x", cwd=tmp_path, server=git_server, check=False
    )
    assert wrong.returncode == 1
    slipway("apps:destroy", "-a", "site", "--confirm", "site", cwd=tmp_path, server=git_server)
    listed = slipway("apps", "--json", cwd=tmp_path, server=git_server)
    assert "site" not in [a["name"] for a in json.loads(listed.stdout)]
