"""What every figure needs: the time budget, fixture sources, apps, and timed deploys.

The platform itself is started by the very code the integration tests use
(``tests.integration.platform``): ``slipway server up`` on free ports with a data dir of its own.
"""

from __future__ import annotations

import io
import secrets
import shutil
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.platform import Platform

FIXTURE_APPS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "apps"
STACKS = ("static", "node", "python")
# The phrase each fixture answers with; a deploy replaces it with one carrying a marker, so the
# benchmark knows the first 200 that comes from the new release.
GREETINGS = {
    "static": ("public/index.html", "hello from a static site"),
    "node": ("build.js", "hello from a built node app"),
    "python": ("wsgi.py", "hello from flask"),
    "java": ("src/main/java/hello/Main.java", "from java"),
}
POLL = 0.02  # seconds between probes while a deploy runs
DEPLOY_TIMEOUT = 300.0


class OutOfTime(Exception):
    """The suite's time budget is spent; the figure reports what it has."""


class Budget:
    """The wall-clock bound of the whole suite."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def need(self, seconds: float) -> None:
        """Raise OutOfTime unless ``seconds`` are still left."""
        if self.left() < seconds:
            raise OutOfTime(f"the time budget had {max(0, self.left()):.0f} s left")


# ----------------------------------------------------------------------------- sources


def marked_source(stack: str, workdir: Path, marker: str) -> Path:
    """A copy of the stack's fixture in ``workdir`` that answers with ``marker``."""
    if workdir.exists():
        keep_git = workdir / ".git"
        for entry in workdir.iterdir():
            if entry != keep_git:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(FIXTURE_APPS / stack, workdir, dirs_exist_ok=True)
    name, phrase = GREETINGS[stack]
    page = workdir / name
    page.write_text(page.read_text().replace(phrase, f"{phrase} {marker}"))
    return workdir


def tarball(directory: Path) -> bytes:
    """The directory as a .tar.gz, the way the CLI sends it (no .git)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for entry in sorted(directory.iterdir()):
            if entry.name != ".git":
                tar.add(entry, arcname=entry.name)
    return buffer.getvalue()


def new_marker() -> str:
    return f"bench-{secrets.token_hex(4)}"


def new_app(platform: Platform, prefix: str) -> str:
    name = f"{prefix}-{secrets.token_hex(3)}"
    created = platform.api("POST", "/apps", json={"name": name})
    if created.status_code != 201:
        raise RuntimeError(f"creating app {name} failed: {created.status_code} {created.text}")
    return name


def delete_app(platform: Platform, app: str) -> None:
    platform.api("DELETE", f"/apps/{app}", timeout=120)


# ----------------------------------------------------------------------------- git


def git(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(cwd),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "Bench",
        "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "Bench",
        "GIT_COMMITTER_EMAIL": "bench@example.com",
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def git_commit_all(workdir: Path, message: str) -> None:
    if not (workdir / ".git").exists():
        git("init", "-q", "-b", "main", cwd=workdir)
    git("add", "-A", ".", cwd=workdir)
    git("commit", "-qm", message, cwd=workdir)


def git_remote(platform: Platform, app: str) -> str:
    return f"http://bench:{platform.admin_token}@{platform.settings.api_bind}/git/{app}.git"


# ----------------------------------------------------------------------------- timed deploys

# Log lines that end each step, in order: (step name, the text that ends it).
STEP_ENDS = (
    ("build", "-----> Build finished in "),
    ("release", "-----> Released v"),
    ("start", " is up on port "),
)


@dataclass
class Timeline:
    """Seconds from the start of a deploy (push or upload) to each moment it went through."""

    source_received: float | None = None
    ends: dict[str, float] = field(default_factory=dict)  # step → end, from the log lines
    first_200: float | None = None
    finished: float | None = None
    ok: bool = False
    error: str = ""
    lines: list[tuple[float, str]] = field(default_factory=list)

    def when(self, text: str) -> float | None:
        """When the first log line containing ``text`` appeared."""
        return next((moment for moment, line in self.lines if text in line), None)

    def steps(self) -> dict[str, float]:
        """Durations of upload, build, release, start, switch; total = start to first 200."""
        marks = [("upload", self.source_received)]
        marks += [(name, self.ends.get(name)) for name, _ in STEP_ENDS]
        marks.append(("switch", self.first_200))
        out: dict[str, float] = {}
        previous = 0.0
        for name, moment in marks:
            if moment is None:
                return out
            out[name] = moment - previous
            previous = moment
        out["total"] = previous
        return out


class LogTail:
    """Reads a deploy's log file as it grows and hands out the lines that are new.

    The deploy is found through the API (the newest deploy of the app not seen before), since
    deploy ids, and so log file names, may be reused after an app is deleted.
    """

    def __init__(self, platform: Platform, app: str) -> None:
        self._platform, self._app = platform, app
        self._known = {d["id"] for d in self._deploys()}
        self._path: Path | None = None
        self._offset = 0
        self._partial = ""

    def _deploys(self) -> list[dict[str, object]]:
        reply = self._platform.api("GET", f"/apps/{self._app}/deploys", timeout=10)
        return list(reply.json()) if reply.status_code == 200 else []

    @property
    def found(self) -> bool:
        return self._path is not None

    def poll(self) -> list[str]:
        if self._path is None:
            fresh = [int(str(d["id"])) for d in self._deploys() if d["id"] not in self._known]
            if not fresh:
                return []
            self._path = self._platform.data_dir / "logs" / "deploys" / f"{min(fresh)}.log"
        with self._path.open(errors="replace") as handle:
            handle.seek(self._offset)
            chunk = handle.read()
            self._offset = handle.tell()
        *lines, self._partial = (self._partial + chunk).split("\n")
        return lines


def timed_deploy(platform: Platform, app: str, marker: str, send: Callable[[], None]) -> Timeline:
    """Run ``send`` (an upload or a push) and follow the deploy until its first 200 and its end.

    The log file is read every 20 ms from the data dir and the app's URL probed through the
    router (the benchmark runs on the platform's host), so the steps are split by when their
    lines appeared, and "live" means the new release answered.
    """
    tail = LogTail(platform, app)
    timeline = Timeline()
    failure: list[str] = []
    started = time.monotonic()

    def sender() -> None:
        try:
            send()
        except Exception as exc:  # reported with the timeline, never lost in the thread
            failure.append(str(exc))

    thread = threading.Thread(target=sender, daemon=True)
    thread.start()
    deadline = started + DEPLOY_TIMEOUT
    while time.monotonic() < deadline:
        now = time.monotonic() - started
        _read_lines(tail, timeline, now)
        if timeline.first_200 is None and _answers_with(platform, app, marker):
            timeline.first_200 = time.monotonic() - started
        if timeline.finished is not None and (timeline.first_200 or not timeline.ok):
            break
        if failure and not thread.is_alive() and timeline.source_received is None:
            break
        time.sleep(POLL)
    thread.join(timeout=60)
    if failure and not timeline.error:
        timeline.error = failure[0]
    if timeline.finished is None and not timeline.error:
        timeline.error = f"the deploy did not finish within {DEPLOY_TIMEOUT:.0f} s"
    return timeline


def _read_lines(tail: LogTail, timeline: Timeline, now: float) -> None:
    for line in tail.poll():
        timeline.lines.append((now, line))
        if timeline.source_received is None:
            timeline.source_received = now
        for step, text in STEP_ENDS:
            if text in line and step not in timeline.ends:
                timeline.ends[step] = now
        if line.startswith("-----> v") and line.endswith(" is live"):
            timeline.finished, timeline.ok = now, True
        elif line.startswith("-----> Deploy failed"):
            timeline.finished, timeline.error = now, line.removeprefix("-----> ")
    if timeline.source_received is None and tail.found:
        timeline.source_received = now


def _answers_with(platform: Platform, app: str, marker: str) -> bool:
    try:
        reply = platform.http_get_app(app, "/", timeout=2)
    except Exception:
        return False
    return reply.status_code == 200 and marker in reply.text


def upload(platform: Platform, app: str, body: bytes) -> Callable[[], None]:
    """A sender that posts the tarball and checks it was accepted."""

    def send() -> None:
        headers = {"Content-Type": "application/gzip"}
        reply = platform.api("POST", f"/apps/{app}/deploys", data=body, headers=headers)
        if reply.status_code != 202:
            raise RuntimeError(f"upload refused: {reply.status_code} {reply.text.strip()}")

    return send


def push(platform: Platform, app: str, workdir: Path) -> Callable[[], None]:
    """A sender that runs ``git push`` of the work tree's main branch."""

    def send() -> None:
        done = git("push", "-q", git_remote(platform, app), "main", cwd=workdir)
        if done.returncode != 0:
            raise RuntimeError(f"git push failed: {done.stderr.strip()[-300:]}")

    return send
