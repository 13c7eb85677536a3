"""The pre-receive hook: a push to the deploy branch deploys the pushed commit.

Run by git receive-pack as ``python -m slipway.gitserver.hook`` with ``old new ref`` lines on
stdin. Everything printed reaches the pusher as ``remote:`` lines. Exit status 0 accepts the
push; anything else rejects it, so a failed deploy leaves the branch (and the running release)
as they were.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from slipway.config import Settings
from slipway.db import make_engine, make_session_factory, session_scope
from slipway.gitserver.handoff import APP_VAR, USER_VAR, settings_from_environment
from slipway.models import Deploy, User
from slipway.services import apps, deploys
from slipway.services.artifacts import FilesystemArtifacts
from slipway.services.errors import SlipwayError

ZERO = "0" * 40
POLL_INTERVAL = 0.5
FINAL_STATES = {"succeeded", "failed"}


@dataclass(frozen=True)
class RefUpdate:
    old: str
    new: str
    ref: str


def parse_updates(text: str) -> list[RefUpdate]:
    """The ``<old> <new> <ref>`` lines git gives a pre-receive hook."""
    updates = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3:
            updates.append(RefUpdate(*parts))
    return updates


def say(line: str = "") -> None:
    print(line, flush=True)


# ----------------------------------------------------------------------------- the deploy


def archive_commit(sha: str, directory: Path) -> Path:
    """``git archive`` of the pushed commit (still in quarantine: the hook's env finds it)."""
    target = directory / f"{sha}.tar.gz"
    subprocess.run(
        ["git", "archive", "--format=tar.gz", "-o", str(target), sha],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return target


def queue_deploy(
    factory: sessionmaker[Session], settings: Settings, app: str, user_id: int, sha: str
) -> int:
    """Store the commit's archive and queue its deploy; the task is sent after the commit."""
    settings.git_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.git_dir, prefix=".archive-") as tmp:
        archive = archive_commit(sha, Path(tmp))
        with session_scope(factory) as session:
            user = session.get(User, user_id)
            if user is None:
                raise SlipwayError("The pushing user no longer exists.")
            found = apps.get_app(session, user, app)
            # Only one artifact store exists (files under the data dir); no Docker needed here.
            artifacts = FilesystemArtifacts(settings.artifacts_dir)
            deploy = deploys.accept_archive_file(
                session, found, archive, settings, artifacts, kind="git", commit=sha
            )
            return deploy.id


def _print_new_lines(path: str, offset: int) -> int:
    if not path:
        return offset
    try:
        with open(path, "rb") as log:
            log.seek(offset)
            data = log.read()
    except FileNotFoundError:
        return offset
    complete = data.rfind(b"\n") + 1  # print whole lines only; the rest comes next time
    for line in data[:complete].decode("utf-8", "replace").splitlines():
        say(line)
    return offset + complete


def follow_deploy(
    factory: sessionmaker[Session], deploy_id: int, timeout: float
) -> tuple[str, str | None]:
    """Print the deploy's log as it grows; return its final state and error."""
    offset, deadline = 0, time.monotonic() + timeout
    while True:
        with session_scope(factory) as session:
            deploy = session.get(Deploy, deploy_id)
            if deploy is None:
                return "failed", "The deploy disappeared (was the app destroyed?)."
            state, error, path = deploy.state, deploy.error, deploy.log_path
        # Read after looking at the state, so a finished deploy's last lines are printed.
        offset = _print_new_lines(path, offset)
        if state in FINAL_STATES:
            return state, error
        if time.monotonic() > deadline:
            return "failed", f"The deploy did not finish within {int(timeout)} seconds."
        time.sleep(POLL_INTERVAL)


def deploy_push(settings: Settings, app: str, user_id: int, sha: str) -> bool:
    """Deploy one pushed commit, printing its log; True when it succeeded."""
    from slipway import tasks  # the edge that sends Celery tasks, like the API and the CLI

    tasks.configure(settings)
    factory = make_session_factory(make_engine(settings))
    say(f"-----> Deploying {app} at {sha[:12]}")
    try:
        deploy_id = queue_deploy(factory, settings, app, user_id, sha)
    except (SlipwayError, subprocess.CalledProcessError) as exc:
        say(f" !     {_reason(exc)}")
        return False
    timeout = settings.build_timeout + 4 * settings.start_timeout + 300
    state, error = follow_deploy(factory, deploy_id, timeout)
    if state != "succeeded":
        say(f" !     Deploy {deploy_id} failed: {error or 'see the lines above'}")
        say(" !     The push is rejected; the previous release keeps serving.")
        return False
    say(f"-----> Deployed: {apps.app_url(settings, app)}")
    return True


def _reason(exc: Exception) -> str:
    if isinstance(exc, subprocess.CalledProcessError):
        stderr = exc.stderr.decode("utf-8", "replace").strip() if exc.stderr else ""
        return f"git archive failed: {stderr or exc}"
    return str(exc)


# ----------------------------------------------------------------------------- entry point


def deploy_branch(settings: Settings, app: str, user_id: int) -> str:
    factory = make_session_factory(make_engine(settings))
    with session_scope(factory) as session:
        user = session.get(User, user_id)
        if user is None:
            raise SlipwayError("The pushing user no longer exists.")
        return apps.get_app(session, user, app).deploy_branch


def run(updates: list[RefUpdate], settings: Settings, app: str, user_id: int) -> int:
    """Handle every pushed ref; return the exit status (non-zero rejects the whole push)."""
    branch = deploy_branch(settings, app, user_id)
    deploy_ref = f"refs/heads/{branch}"
    status = 0
    for update in updates:
        if update.ref != deploy_ref:
            say(f"-----> {update.ref}: accepted, not deployed (only {branch} deploys)")
        elif update.new == ZERO:
            say(f"-----> {update.ref} deleted: nothing deployed, the app keeps running")
        elif not deploy_push(settings, app, user_id, update.new):
            status = 1
    return status


def main() -> int:
    app = os.environ.get(APP_VAR)
    user_id = os.environ.get(USER_VAR)
    if not app or not user_id:
        say(" !     Push through the Slipway API (http://<api>/git/<app>.git) to deploy.")
        return 1
    try:
        return run(parse_updates(sys.stdin.read()), settings_from_environment(), app, int(user_id))
    except SlipwayError as exc:
        say(f" !     {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
