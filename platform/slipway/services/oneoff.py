"""One-off commands (``slipway run``): a fresh container of the app's current release.

The container is the release's run image with the slug laid out in a volume of its own at
``/mnt`` (exactly as an instance sees it), the release's config vars, the same safe defaults as
every container (mop, read-only root, no capabilities, memory and pids limits), no published
port, and a wall-clock limit. Its output is streamed line by line or, with a terminal
(``slipway run bash``), passes both ways through its TTY. The container and the volume are
removed whatever happens. A run whose API process died leaves both behind: the next run sweeps
leftovers older than the time limit.
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
import shlex
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

from sqlalchemy.orm import Session

from slipway.adapters import Adapters
from slipway.config import Settings
from slipway.models import App
from slipway.runtime.base import (
    LABEL_APP,
    LABEL_KIND,
    BuildSpec,
    ContainerError,
    Limits,
    Mount,
    RuntimeUnavailable,
    Terminal,
    TerminalSize,
)
from slipway.services import assets, layout
from slipway.services.errors import Conflict, Invalid, Unavailable
from slipway.services.instances import platform_labels
from slipway.services.runtimes import node
from slipway.services.stacks import run_image

logger = logging.getLogger(__name__)

KIND = "run"
VOLUME_PREFIX = "run-"
MAX_COMMAND = 16 * 1024  # characters, all arguments together
SWEEP_MARGIN = 300  # seconds past the time limit before a leftover is certainly abandoned
DEFAULT_TERM = "xterm"
TERM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+_-]{0,63}$")
MAX_TERMINAL_SIDE = 10_000  # rows or columns
# The app's own tools first: a Python app's virtualenv, a Node app's local binaries.
RUN_PATH = ":".join(
    [
        f"{layout.RUN_ROOT}/app/.venv/bin",
        f"{layout.RUN_ROOT}/app/node_modules/.bin",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ]
)


@dataclass(frozen=True)
class RunPlan:
    """Everything a run needs, read from the database before the (long) run starts."""

    app: str
    version: int
    stack: str
    slug_path: Path
    config: dict[str, str]
    memory: int
    command: list[str]
    name: str  # of the container and, with VOLUME_PREFIX, of the volume
    node_version: str = ""  # the release's Node.js, mounted at node.HOME ("": the image's)
    spaces: tuple[Mount, ...] = ()  # every space of the app, at /spaces/<slot>/tree
    release_id: int = 0  # with assets_path: the release's assets, read-only at /mnt/assets
    assets_path: str = ""

    @property
    def volume_name(self) -> str:
        return VOLUME_PREFIX + self.name.removeprefix("slipway-run-")


@dataclass(frozen=True)
class TerminalRequest:
    """The user's terminal, for a run with a TTY: its size and type (``$TERM``)."""

    size: TerminalSize
    term: str = DEFAULT_TERM

    @classmethod
    def parse(cls, rows: object, cols: object, term: object = None) -> TerminalRequest:
        if not (_terminal_side(rows) and _terminal_side(cols)):
            raise Invalid(f'"rows" and "cols" must be whole numbers from 1 to {MAX_TERMINAL_SIDE}.')
        if term is None:
            term = DEFAULT_TERM
        if not isinstance(term, str) or not TERM_RE.match(term):
            raise Invalid('"term" must be a terminal type such as "xterm-256color".')
        return cls(TerminalSize(rows, cols), term)


def _terminal_side(value: object) -> TypeGuard[int]:
    return type(value) is int and 0 < value <= MAX_TERMINAL_SIDE


@dataclass(frozen=True)
class RunResult:
    exit_status: int | None  # None when the time limit stopped it
    timed_out: bool
    duration: float


def parse_command(command: object) -> list[str]:
    """A list of arguments as is; a string runs through ``bash -c`` (like ``heroku run``)."""
    if isinstance(command, str):
        if not command.strip():
            raise Invalid('Send the command to run: {"command": ["rake", "db:migrate"]}.')
        args = ["bash", "-c", command]
    elif isinstance(command, list) and command and all(isinstance(a, str) for a in command):
        args = list(command)
    else:
        raise Invalid('"command" must be a string or a non-empty list of strings.')
    if sum(len(a) for a in args) > MAX_COMMAND or any("\0" in a for a in args):
        raise Invalid(f"The command must be at most {MAX_COMMAND} characters, without NUL bytes.")
    return args


def plan_run(session: Session, adapters: Adapters, app: App, command: object) -> RunPlan:
    """What to run for ``app``: its current release, its spaces and the command; clear errors
    otherwise (a space that is not mounted on the host is one: the run never goes without)."""
    from slipway.services.spaces import space_mounts  # late: spaces -> events -> tasks -> us

    args = parse_command(command)
    release = app.current_release
    if release is None:
        raise Conflict(f"App {app.name!r} has no release yet: deploy it first.")
    spaces = tuple(space_mounts(session, adapters, app, None))
    name = f"slipway-run-{app.name}-{int(time.time())}-{secrets.token_hex(3)}"
    return RunPlan(
        app.name,
        release.version,
        release.stack,
        Path(release.slug_path),
        dict(release.config),
        app.memory,
        args,
        name,
        release.node_version,
        spaces,
        release.id,
        release.assets_path,
    )


def describe(plan: RunPlan) -> str:
    return f"Running {shlex.join(plan.command)} on {plan.app} (v{plan.version})"


def run_spec(settings: Settings, plan: RunPlan, volume_path: Path) -> BuildSpec:
    env = layout.run_env(plan.config, plan.app, "run.1", KIND) | {"PATH": RUN_PATH}
    env.pop("PORT", None)  # nothing listens for traffic in a one-off container
    mounts = [Mount(volume_path, layout.RUN_ROOT), *plan.spaces]
    mounts += assets.mounts_of(settings, plan.app, plan.release_id, plan.assets_path)
    if plan.node_version:
        mounts.append(node.mount(settings, plan.node_version))
        env["PATH"] = node.path(RUN_PATH.split(":")[:2])
    return BuildSpec(
        image=run_image(settings, plan.stack),
        name=plan.name,
        mounts=mounts,
        env=env,
        limits=Limits(memory=plan.memory, pids=settings.instance_pids),
        timeout=settings.run_timeout,
        labels={**platform_labels(settings), LABEL_KIND: KIND, LABEL_APP: plan.app},
        command=plan.command,
        network=True,  # a migration talks to its database
    )


def execute(
    adapters: Adapters, settings: Settings, plan: RunPlan, on_line: Callable[[str], None]
) -> RunResult:
    """Run the plan to the end (or the time limit), streaming its output lines; clean up."""
    with _run_volume(adapters, settings, plan) as volume_path:
        spec = run_spec(settings, plan, volume_path)
        result = adapters.runtime.run_build(spec, on_line)
    return RunResult(result.exit_code, result.timed_out, result.duration)


def execute_with_terminal(
    adapters: Adapters,
    settings: Settings,
    plan: RunPlan,
    terminal: TerminalRequest,
    attach: Callable[[Terminal], None],
) -> RunResult:
    """Run the plan with a TTY that ``attach`` drives (``slipway run bash``); clean up.

    The container is the same as :func:`execute`'s, with a terminal: ``attach`` returns when
    the command's output ends or its user goes away, and a command still running then is
    stopped. The time limit applies.
    """
    with _run_volume(adapters, settings, plan) as volume_path:
        spec = run_spec(settings, plan, volume_path)
        spec.env["TERM"] = terminal.term
        result = adapters.runtime.run_terminal(spec, terminal.size, attach)
    return RunResult(result.exit_code, result.timed_out, result.duration)


@contextlib.contextmanager
def _run_volume(adapters: Adapters, settings: Settings, plan: RunPlan) -> Iterator[Path]:
    """The run's volume with the release laid out in it, destroyed after the run whatever
    happens; engine failures become domain errors."""
    sweep_leftovers(adapters, settings)
    try:
        volume = adapters.volumes.create(plan.volume_name, settings.instance_volume_size)
        with contextlib.suppress(OSError):
            (volume.path / "lost+found").rmdir()
        env = layout.run_env(plan.config, plan.app, "run.1", KIND)
        layout.prepare_instance_volume(volume.path, plan.slug_path, KIND, env)
        if plan.node_version:
            registry = node.registry_of(settings, adapters.node_releases)
            node.ensure(settings, registry, plan.node_version)
        yield volume.path
    except RuntimeUnavailable as exc:
        raise Unavailable(str(exc)) from exc
    except ContainerError as exc:
        raise Conflict(f"The one-off container could not run: {exc}") from exc
    finally:
        _destroy_quietly(adapters, plan.volume_name)


def cancel(adapters: Adapters, plan: RunPlan) -> None:
    """Stop a run early (the client went away); :func:`execute` then cleans up."""
    with contextlib.suppress(Exception):
        adapters.runtime.stop(plan.name, timeout=2)


def sweep_leftovers(adapters: Adapters, settings: Settings) -> list[str]:
    """Remove one-off containers and volumes older than the time limit (a crash's leftovers)."""
    cutoff = time.time() - settings.run_timeout - SWEEP_MARGIN
    removed = []
    with contextlib.suppress(Exception):
        for container in adapters.runtime.list(labels={**platform_labels(settings)}):
            if container.labels.get(LABEL_KIND) == KIND and _started(container.name) < cutoff:
                adapters.runtime.stop(container.container_id, timeout=2)
                removed.append(container.name)
    with contextlib.suppress(Exception):
        for volume in adapters.volumes.list():
            if volume.name.startswith(VOLUME_PREFIX) and _started(volume.name) < cutoff:
                _destroy_quietly(adapters, volume.name)
                removed.append(volume.name)
    return removed


def _started(name: str) -> float:
    """The unix time in a run's name (``...-<time>-<hex>``); far future when there is none."""
    parts = name.rsplit("-", 2)
    return float(parts[1]) if len(parts) == 3 and parts[1].isdigit() else float("inf")


def _destroy_quietly(adapters: Adapters, name: str) -> None:
    try:
        adapters.volumes.destroy(name)
    except Exception as exc:  # swept by a later run
        logger.warning("could not remove the one-off volume %s: %s", name, exc)
