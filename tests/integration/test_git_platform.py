"""`git push` to the whole running platform: real builds, real containers, the router.

Each test makes apps of its own (random names), so they share the session's platform safely.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.helpers import wait_until
from tests.integration.platform import Platform

pytestmark = pytest.mark.slow

PUSH_TIMEOUT = 900


def new_app(platform: Platform, prefix: str = "git") -> str:
    name = f"{prefix}-{secrets.token_hex(3)}"
    response = platform.api("POST", "/apps", json={"name": name})
    assert response.status_code == 201, response.text
    return name


def git_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "Dev",
        "GIT_AUTHOR_EMAIL": "dev@example.com",
        "GIT_COMMITTER_NAME": "Dev",
        "GIT_COMMITTER_EMAIL": "dev@example.com",
    } | (extra or {})


def git(
    *args: str, cwd: Path, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=env or git_env(cwd),
        capture_output=True,
        text=True,
        timeout=PUSH_TIMEOUT,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def commit_site(work: Path, files: dict[str, str], message: str) -> str:
    """Write the files, commit them all, return the commit's sha."""
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    git("add", "-A", cwd=work)
    git("commit", "-qm", message, cwd=work)
    return git("rev-parse", "HEAD", cwd=work).stdout.strip()


def new_work_tree(path: Path) -> Path:
    path.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=path)
    return path


def remote_url(platform: Platform, app: str, token: str) -> str:
    host = platform.api_url.removeprefix("http://")
    return f"http://any:{token}@{host}/git/{app}.git"


def serves(platform: Platform, app: str, text: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            response = platform.http_get_app(app, "/", timeout=5)
        except requests.RequestException:
            return False
        return response.status_code == 200 and text in response.text

    return check


def page(version: str) -> dict[str, str]:
    return {"index.html": f"<h1>site {version}</h1>\n"}


# ----------------------------------------------------------------------------- tests


def test_push_deploys_redeploys_and_a_failing_build_is_rejected(
    running_platform: Platform, tmp_path: Path
) -> None:
    app = new_app(running_platform)
    remote = remote_url(running_platform, app, running_platform.admin_token)
    work = new_work_tree(tmp_path / "site")

    commit_site(work, page("one"), "first")
    first = git("push", remote, "main", cwd=work)
    port = running_platform.router_port
    assert f"remote: -----> Deploying {app}" in first.stderr
    assert f"remote: -----> Deployed: http://{app}.localhost:{port}" in first.stderr
    wait_until(serves(running_platform, app, "site one"), 60, "the first push is served")

    commit_site(work, page("two"), "second")
    git("push", remote, "main", cwd=work)
    wait_until(serves(running_platform, app, "site two"), 60, "the redeploy is served")
    good = git("rev-parse", "HEAD", cwd=work).stdout.strip()

    commit_site(work, {"package.json": "{ not json"}, "broken")
    broken = git("push", remote, "main", cwd=work, check=False)
    assert broken.returncode != 0
    assert "pre-receive hook declined" in broken.stderr
    assert "remote:  !     Deploy" in broken.stderr and "failed:" in broken.stderr
    assert "previous release keeps serving" in broken.stderr
    assert serves(running_platform, app, "site two")()
    heads = git("ls-remote", remote, "refs/heads/main", cwd=work).stdout
    assert heads.split()[0] == good


def test_another_branch_is_stored_but_not_deployed(
    running_platform: Platform, tmp_path: Path
) -> None:
    app = new_app(running_platform)
    remote = remote_url(running_platform, app, running_platform.admin_token)
    work = new_work_tree(tmp_path / "site")
    sha = commit_site(work, page("feature"), "feature work")
    result = git("push", remote, "main:feature", cwd=work)
    assert "refs/heads/feature: accepted, not deployed (only main deploys)" in result.stderr
    assert git("ls-remote", remote, "refs/heads/feature", cwd=work).stdout.split()[0] == sha
    assert running_platform.api("GET", f"/apps/{app}/deploys").json() == []


def test_a_wrong_token_is_refused_whether_or_not_the_app_exists(
    running_platform: Platform, tmp_path: Path
) -> None:
    app = new_app(running_platform)
    work = new_work_tree(tmp_path / "site")
    commit_site(work, page("x"), "x")
    answers = []
    for name in (app, f"missing-{secrets.token_hex(3)}"):
        result = git(
            "push", remote_url(running_platform, name, "wrong"), "main", cwd=work, check=False
        )
        assert result.returncode != 0
        answers.append(result.stderr.replace(name, "APP"))
    assert answers[0] == answers[1]
    assert "Authentication failed" in answers[0]
    assert running_platform.api("GET", f"/apps/{app}/deploys").json() == []
