"""The git server with the real `git` client over HTTP: auth, the hook, branches, the push lock.

The API runs in a thread (werkzeug) on a free port with its own SQLite database and its own
redis-server; a small stand-in worker finishes queued deploys, so these tests exercise the git
side on their own. `test_cli_platform.py` pushes to the whole running platform.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from sqlalchemy import select
from werkzeug.serving import make_server

from slipway import tasks
from slipway.config import Settings
from slipway.db import make_engine, make_session_factory, session_scope, upgrade_database
from slipway.gitserver import handoff, repos
from slipway.models import App, Deploy
from slipway.services import apps, users
from slipway.webapp import create_app
from tests.helpers import free_port

pytestmark = pytest.mark.slow


@dataclass
class GitServer:
    url: str
    settings: Settings
    alice: str  # owns the app "hello"
    bob: str  # has no apps

    def remote(self, token: str, app: str = "hello") -> str:
        host = self.url.removeprefix("http://")
        return f"http://any:{token}@{host}/git/{app}.git"

    def deploys(self) -> list[Deploy]:
        factory = make_session_factory(make_engine(self.settings))
        with session_scope(factory) as session:
            return list(session.scalars(select(Deploy).order_by(Deploy.id)))


def _redis(tmp: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", tmp],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ping = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True)
        if ping.stdout.strip() == b"PONG":
            break
        time.sleep(0.1)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _stand_in_worker(settings: Settings, stop: threading.Event) -> None:
    """Finish queued deploys: fail when the source has a FAIL file, never end one with HANG."""
    factory = make_session_factory(make_engine(settings))
    while not stop.wait(0.2):
        with session_scope(factory) as session:
            for deploy in session.scalars(select(Deploy).where(Deploy.state == "queued")):
                with tarfile.open(deploy.source_path) as tar:
                    names = tar.getnames()
                if "HANG" in names:
                    continue
                failed = "FAIL" in names
                with open(deploy.log_path, "a") as log:
                    log.write(f"-----> Building {len(names)} files\n")
                    log.write("build step failed\n" if failed else "build ok\n")
                deploy.state = "failed" if failed else "succeeded"
                deploy.error = "The build exited with status 1." if failed else None


@contextmanager
def serve_api(tmp_path: Path) -> Iterator[GitServer]:
    """The API on a free port with users alice (owning "hello") and bob, and a stand-in worker."""
    redis_gen = _redis(tmp_path)
    redis_url = next(redis_gen)
    data = tmp_path / "data"
    port = free_port()  # the hook calls the API back at this address
    settings = Settings(
        data_dir=data,
        api_bind=f"127.0.0.1:{port}",
        redis_url=redis_url,
        build_timeout=60,
        start_timeout=5,
        max_upload_size=1024**2,  # a push over it is cheap to make
    )
    upgrade_database(settings)
    tasks.configure(settings)  # the API in this process sends its tasks to this redis
    # Celery keeps broker connections in pools: drop those to an earlier test's redis.
    tasks.celery._after_fork()
    factory = make_session_factory(make_engine(settings))
    with session_scope(factory) as session:
        alice = users.create_user(session, "alice")
        alice_token = users.create_token(session, alice)
        bob_token = users.create_token(session, users.create_user(session, "bob"))
        apps.create_app(session, alice, "hello", settings)
    server = make_server("127.0.0.1", port, create_app(settings), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stop = threading.Event()
    worker = threading.Thread(target=_stand_in_worker, args=(settings, stop), daemon=True)
    worker.start()
    try:
        yield GitServer(f"http://127.0.0.1:{server.server_port}", settings, alice_token, bob_token)
    finally:
        stop.set()
        worker.join(timeout=10)
        server.shutdown()
        next(redis_gen, None)


@pytest.fixture
def git_server(tmp_path: Path) -> Iterator[GitServer]:
    with serve_api(tmp_path) as server:
        yield server


def git(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(cwd),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "Dev",
        "GIT_AUTHOR_EMAIL": "dev@example.com",
        "GIT_COMMITTER_NAME": "Dev",
        "GIT_COMMITTER_EMAIL": "dev@example.com",
    }
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture
def work(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    git("init", "-q", "-b", "main", cwd=path)
    (path / "app.py").write_text("print('hello')\n")
    git("add", ".", cwd=path)
    git("commit", "-qm", "first", cwd=path)
    return path


def head(work: Path) -> str:
    return git("rev-parse", "HEAD", cwd=work).stdout.strip()


def remote_ref(server: GitServer, ref: str) -> str | None:
    repo = repos.repo_path(server.settings, "hello")
    result = subprocess.run(
        ["git", "rev-parse", "--verify", "-q", ref], cwd=repo, capture_output=True, text=True
    )
    return result.stdout.strip() or None


# ----------------------------------------------------------------------------- auth


def test_a_wrong_token_is_refused_without_revealing_the_app(git_server: GitServer) -> None:
    answers = []
    for app in ("hello", "does-not-exist"):
        url = f"{git_server.url}/git/{app}.git/info/refs?service=git-receive-pack"
        response = requests.get(url, auth=("any", "wrong-token"), timeout=30)
        answers.append((response.status_code, response.text))
        assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert answers[0] == answers[1]
    assert answers[0][0] == 401


def test_a_wrong_token_fails_the_push(git_server: GitServer, work: Path) -> None:
    result = git("push", git_server.remote("wrong-token"), "main", cwd=work, check=False)
    assert result.returncode != 0
    assert "Authentication failed" in result.stderr
    assert git_server.deploys() == []


def test_another_users_app_looks_like_a_missing_one(git_server: GitServer) -> None:
    answers = []
    for app in ("hello", "does-not-exist"):
        url = f"{git_server.url}/git/{app}.git/info/refs?service=git-receive-pack"
        response = requests.get(url, auth=("bob", git_server.bob), timeout=30)
        answers.append((response.status_code, response.text))
    assert answers[0] == answers[1]
    assert answers[0][0] == 404


# ----------------------------------------------------------------------------- pushes


def test_a_push_to_main_deploys_and_ends_with_the_url(git_server: GitServer, work: Path) -> None:
    result = git("push", git_server.remote(git_server.alice), "main", cwd=work)
    sha = head(work)
    assert f"remote: -----> Deploying hello at {sha[:12]}" in result.stderr
    assert "remote: build ok" in result.stderr
    assert "remote: -----> Deployed: http://hello.localhost" in result.stderr
    assert remote_ref(git_server, "refs/heads/main") == sha
    [deploy] = git_server.deploys()
    assert (deploy.source_kind, deploy.commit, deploy.state) == ("git", sha, "succeeded")

    # A second push (a redeploy) deploys the new commit.
    (work / "more.py").write_text("x = 1\n")
    git("add", ".", cwd=work)
    git("commit", "-qm", "second", cwd=work)
    again = git("push", git_server.remote(git_server.alice), "main", cwd=work)
    assert "remote: -----> Building 2 files" in again.stderr
    assert [d.commit for d in git_server.deploys()] == [sha, head(work)]


def test_a_failed_deploy_rejects_the_push(git_server: GitServer, work: Path) -> None:
    git("push", git_server.remote(git_server.alice), "main", cwd=work)
    good = head(work)
    (work / "FAIL").write_text("")
    git("add", ".", cwd=work)
    git("commit", "-qm", "broken", cwd=work)
    result = git("push", git_server.remote(git_server.alice), "main", cwd=work, check=False)
    assert result.returncode != 0
    assert "remote: build step failed" in result.stderr
    assert "The build exited with status 1." in result.stderr
    assert "pre-receive hook declined" in result.stderr
    assert remote_ref(git_server, "refs/heads/main") == good


def test_another_branch_is_accepted_without_a_deploy(git_server: GitServer, work: Path) -> None:
    result = git("push", git_server.remote(git_server.alice), "main:feature", cwd=work)
    assert "refs/heads/feature: accepted, not deployed (only main deploys)" in result.stderr
    assert remote_ref(git_server, "refs/heads/feature") == head(work)
    assert git_server.deploys() == []


def test_the_pushed_code_can_be_cloned_back(
    git_server: GitServer, work: Path, tmp_path: Path
) -> None:
    git("push", git_server.remote(git_server.alice), "main:feature", cwd=work)
    for version in ("1", "2"):  # both wire protocols go through http-backend
        clone = tmp_path / f"clone-v{version}"
        remote = git_server.remote(git_server.alice)
        git(
            "-c",
            f"protocol.version={version}",
            "clone",
            "-q",
            "-b",
            "feature",
            remote,
            str(clone),
            cwd=tmp_path,
        )
        assert (clone / "app.py").read_text() == "print('hello')\n"


def test_pushes_to_one_app_wait_for_each_other(git_server: GitServer, work: Path) -> None:
    """While another push holds the app's push lock, a push waits; it finishes after."""
    with repos.push_lock(git_server.settings, "hello", timeout=5):
        env_push = subprocess.Popen(
            ["git", "push", git_server.remote(git_server.alice), "main"],
            cwd=work,
            env={"PATH": os.environ["PATH"], "HOME": str(work), "GIT_TERMINAL_PROMPT": "0"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        time.sleep(3)
        assert env_push.poll() is None  # still waiting
        assert git_server.deploys() == []
    assert env_push.wait(timeout=120) == 0
    assert [d.state for d in git_server.deploys()] == ["succeeded"]


def _pkt(text: str) -> bytes:
    data = text.encode()
    return f"{len(data) + 4:04x}".encode() + data


def test_a_gzip_request_body_is_understood(git_server: GitServer, work: Path) -> None:
    sha = head(work)
    git("push", git_server.remote(git_server.alice), "main:feature", cwd=work)
    request = _pkt("command=ls-refs\n") + b"0001" + _pkt("ref-prefix refs/heads/\n") + b"0000"
    response = requests.post(
        f"{git_server.url}/git/hello.git/git-upload-pack",
        data=gzip.compress(request),
        headers={
            "Content-Type": "application/x-git-upload-pack-request",
            "Content-Encoding": "gzip",
            "Git-Protocol": "version=2",
        },
        auth=("any", git_server.alice),
        timeout=30,
    )
    assert response.status_code == 200
    assert f"{sha} refs/heads/feature".encode() in response.content


# ----------------------------------------------------------------------------- what the hook says


def commit_file(work: Path, name: str, data: bytes) -> str:
    (work / name).write_bytes(data)
    git("add", ".", cwd=work)
    git("commit", "-qm", f"add {name}", cwd=work)
    return head(work)


def test_another_deploy_branch_deploys_and_deleting_it_deploys_nothing(
    git_server: GitServer, work: Path
) -> None:
    # git itself refuses to delete the repository's current branch (main): use another one.
    factory = make_session_factory(make_engine(git_server.settings))
    with session_scope(factory) as session:
        session.scalars(select(App)).one().deploy_branch = "production"
    remote = git_server.remote(git_server.alice)
    result = git("push", remote, "main", "main:production", cwd=work)
    assert "refs/heads/main: accepted, not deployed (only production deploys)" in result.stderr
    assert "remote: -----> Deployed: http://hello.localhost" in result.stderr
    deleted = git("push", remote, ":production", cwd=work)
    assert "production deleted: nothing deployed, the app keeps running" in deleted.stderr
    assert remote_ref(git_server, "refs/heads/production") is None
    assert [d.commit for d in git_server.deploys()] == [head(work)]  # the first push's only


def test_a_push_that_bypasses_the_api_is_refused(git_server: GitServer, work: Path) -> None:
    repo = repos.ensure_repo(git_server.settings, "hello")
    result = git("push", str(repo), "main", cwd=work, check=False)
    assert result.returncode != 0
    assert "Push through the Slipway API" in result.stderr
    assert remote_ref(git_server, "refs/heads/main") is None
    assert git_server.deploys() == []


def test_an_archive_over_the_upload_limit_rejects_the_push(
    git_server: GitServer, work: Path
) -> None:
    commit_file(work, "big.bin", os.urandom(2 * 1024**2))  # random: gzip cannot shrink it
    result = git("push", git_server.remote(git_server.alice), "main", cwd=work, check=False)
    assert result.returncode != 0
    assert "remote:  !     The upload is larger than the limit of 1 MB." in result.stderr
    assert "previous release keeps serving" in result.stderr
    assert remote_ref(git_server, "refs/heads/main") is None
    assert git_server.deploys() == []


def run_hook(
    server: GitServer, sha: str, timeout: float = 60, **changes: str
) -> subprocess.CompletedProcess[str]:
    """The app's installed pre-receive hook, as receive-pack runs it for a push of ``sha`` to main.

    ``changes`` replace what the API view hands over (e.g. the token), to meet the situations a
    push can meet after it was let in: a revoked token, an app destroyed meanwhile...
    """
    repo = repos.ensure_repo(server.settings, "hello")
    handed = handoff.hook_environment(server.settings, "hello", "main", server.alice, timeout)
    return subprocess.run(
        [str(repo / "hooks" / "pre-receive")],
        cwd=repo,
        env={"PATH": os.environ["PATH"], "GIT_DIR": str(repo)} | handed | changes,
        input=f"{'0' * 40} {sha} refs/heads/main\n",
        capture_output=True,
        text=True,
        timeout=120,
    )


def stored_commit(server: GitServer, work: Path) -> str:
    """The work tree's HEAD, stored in the app's repository on a branch that does not deploy."""
    git("push", server.remote(server.alice), "main:stored", cwd=work)
    return head(work)


@pytest.mark.parametrize(
    ("changes", "sentence"),
    [
        ({"SLIPWAY_GIT_TOKEN": "revoked"}, "Your API token is no longer valid"),
        ({"SLIPWAY_GIT_APP": "gone"}, "There is no app named 'gone'."),
    ],
)
def test_a_user_or_app_that_vanished_rejects_the_push_with_a_clear_line(
    git_server: GitServer, work: Path, changes: dict[str, str], sentence: str
) -> None:
    result = run_hook(git_server, stored_commit(git_server, work), **changes)
    assert result.returncode == 1
    assert f" !     {sentence}" in result.stdout
    assert "previous release keeps serving" in result.stdout
    assert git_server.deploys() == []


def test_an_api_that_cannot_be_reached_rejects_the_push(git_server: GitServer, work: Path) -> None:
    gone = f"http://127.0.0.1:{free_port()}"
    result = run_hook(git_server, stored_commit(git_server, work), SLIPWAY_API_URL=gone)
    assert result.returncode == 1
    assert f" !     Cannot reach the Slipway API at {gone}" in result.stdout
    assert git_server.deploys() == []


def test_a_commit_git_cannot_archive_makes_no_deploy(git_server: GitServer, work: Path) -> None:
    stored_commit(git_server, work)
    result = run_hook(git_server, "f" * 40)  # not in the repository
    assert result.returncode == 1
    assert " !     git archive failed: " in result.stdout
    assert git_server.deploys() == []


def test_a_deploy_that_never_ends_times_out_with_a_clear_line(
    git_server: GitServer, work: Path
) -> None:
    commit_file(work, "HANG", b"")
    started = time.monotonic()
    result = run_hook(git_server, stored_commit(git_server, work), timeout=3)
    assert time.monotonic() - started < 30
    assert result.returncode == 1
    assert "-----> Source received: 2 files (git)" in result.stdout
    assert " !     Deploy 1 did not finish within 3 seconds (it is still queued)." in result.stdout
    [deploy] = git_server.deploys()
    assert (deploy.source_kind, deploy.commit, deploy.state) == ("git", head(work), "queued")
