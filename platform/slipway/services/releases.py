"""Releases: immutable, numbered slug + config snapshots. Rollback and config changes make new ones.

Making a release only writes rows; the instances are rolled onto it by the ``slipway.roll`` task,
sent after the transaction commits. The release phase (Heroku's: the Procfile's ``release``
command, and app.json's ``scripts.predeploy``) runs once per release before the switch, each in a
one-off container of the new release; its failure keeps the old release serving.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from slipway.adapters import Adapters
from slipway.config import Settings
from slipway.models import App, Release
from slipway.runtime.base import Mount
from slipway.services import config_vars, layout, oneoff
from slipway.services.archives import RELEASE_TYPE
from slipway.services.errors import Invalid, NotFound, SlipwayError
from slipway.services.runtimes import node

logger = logging.getLogger(__name__)

ROLL_TASK = "slipway.roll"
Log = Callable[[str], None]


def enqueue(session: Session, task_name: str, *args: Any) -> None:
    """Send a task once the session commits (imported late: services stay free of Celery)."""
    from slipway.tasks.dispatch import enqueue_after_commit

    enqueue_after_commit(session, task_name, *args)


def next_version(session: Session, app: App) -> int:
    latest = session.scalar(select(func.max(Release.version)).where(Release.app_id == app.id))
    return (latest or 0) + 1


def create_release(
    session: Session,
    app: App,
    *,
    slug_path: str,
    stack: str,
    config: dict[str, str],
    process_types: dict[str, str],
    description: str,
    health_checks: list[dict[str, Any]] | None = None,
    deploy_id: int | None = None,
    node_version: str = "",
    assets_path: str = "",
) -> Release:
    """Write release v(N+1) of the app; the caller decides when instances move onto it."""
    release = Release(
        app_id=app.id,
        version=next_version(session, app),
        slug_path=slug_path,
        stack=stack,
        node_version=node_version,
        assets_path=assets_path,
        config=dict(config),
        process_types=dict(process_types),
        health_checks=list(health_checks or []),
        description=description,
        deploy_id=deploy_id,
    )
    session.add(release)
    session.flush()
    return release


def get_release(session: Session, app: App, version: int) -> Release:
    release = session.scalar(
        select(Release).where(Release.app_id == app.id, Release.version == version)
    )
    if release is None:
        raise NotFound(f"The app {app.name} has no release v{version}.")
    return release


def list_releases(session: Session, app: App) -> list[Release]:
    """Newest first."""
    query = select(Release).where(Release.app_id == app.id).order_by(Release.version.desc())
    return list(session.scalars(query))


def rollback(session: Session, app: App, version: object) -> Release:
    """A new release with the slug and config of release ``version``; the instances roll onto it."""
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise Invalid('Send the version to roll back to, like {"version": 3}.')
    target = get_release(session, app, version)
    if not all(Path(path).is_file() for path in (target.slug_path, target.assets_path) if path):
        raise Invalid(f"Release v{version} is too old: its slug was pruned.")
    release = create_release(
        session,
        app,
        slug_path=target.slug_path,
        assets_path=target.assets_path,
        stack=target.stack,
        node_version=target.node_version,
        config=target.config,
        process_types=target.process_types,
        health_checks=target.health_checks,
        description=f"Rollback to v{version}",
    )
    app.config = dict(target.config)
    enqueue(session, ROLL_TASK, app.id, release.id)
    return release


def change_config(session: Session, app: App, changes: object) -> Release | None:
    """Apply a config change; with a running release, make a new release and roll onto it.

    Returns the new release, or None when the app has no release yet or nothing changed.
    """
    checked = config_vars.validate_changes(changes)
    config = config_vars.apply_changes(dict(app.config), checked)
    if config == dict(app.config):
        return None
    app.config = config
    current = app.current_release
    if current is None:
        session.flush()
        return None
    release = create_release(
        session,
        app,
        slug_path=current.slug_path,
        assets_path=current.assets_path,
        stack=current.stack,
        node_version=current.node_version,
        config=config,
        process_types=current.process_types,
        health_checks=current.health_checks,
        description=_describe(checked),
    )
    enqueue(session, ROLL_TASK, app.id, release.id)
    return release


def _describe(changes: dict[str, str | None]) -> str:
    set_keys = sorted(k for k, v in changes.items() if v is not None)
    unset_keys = sorted(k for k, v in changes.items() if v is None)
    parts = []
    if set_keys:
        parts.append("Set " + ", ".join(set_keys))
    if unset_keys:
        parts.append("Unset " + ", ".join(unset_keys))
    return "; ".join(parts)


# ----------------------------------------------------------------------------- release phase


class PhaseFailed(SlipwayError):
    """The release phase (or app.json predeploy) failed; the new release was not switched to."""


@dataclass(frozen=True)
class Phase:
    """One command run once per release in a one-off container of that release."""

    name: str  # "predeploy", "release" or "postdeploy"
    command: list[str]


@dataclass(frozen=True)
class PhaseTarget:
    """The release a phase runs on (it may not have a row yet: phases run before it is written)."""

    app: App
    version: int
    stack: str
    slug_path: Path
    config: dict[str, str]
    node_version: str = ""
    spaces: tuple[Mount, ...] = ()  # every space of the app (spaces.space_mounts(..., None))


def release_phases(process_types: dict[str, str], predeploy: str | None) -> list[Phase]:
    """What runs before the switch: app.json predeploy, then the Procfile's ``release``."""
    phases = []
    if predeploy:
        phases.append(Phase("predeploy", ["bash", "-c", predeploy]))
    if RELEASE_TYPE in process_types:
        # `start release` runs the Procfile line as the image would (a Python app's venv on PATH).
        phases.append(Phase("release", ["start", RELEASE_TYPE]))
    return phases


def run_phases(
    adapters: Adapters,
    settings: Settings,
    target: PhaseTarget,
    phases: list[Phase],
    log: Log,
    labels: dict[str, str] | None = None,
) -> None:
    """Run each phase to the end, in order; PhaseFailed stops at the first that fails."""
    for phase in phases:
        run_phase(adapters, settings, target, phase, log, labels)


def run_phase(
    adapters: Adapters,
    settings: Settings,
    target: PhaseTarget,
    phase: Phase,
    log: Log,
    labels: dict[str, str] | None = None,
) -> None:
    """One phase in a fresh one-off container (the run image, its own volume, the app's env)."""
    plan = _phase_plan(target, phase)
    log(f"-----> Running the {phase.name} phase of v{target.version}: {shlex.join(phase.command)}")
    try:
        volume = adapters.volumes.create(plan.volume_name, settings.instance_volume_size)
        with contextlib.suppress(OSError):
            (volume.path / "lost+found").rmdir()
        env = layout.run_env(plan.config, plan.app, f"{phase.name}.1", phase.name)
        layout.prepare_instance_volume(volume.path, plan.slug_path, phase.name, env)
        if plan.node_version:
            registry = node.registry_of(settings, adapters.node_releases)
            node.ensure(settings, registry, plan.node_version)
        spec = oneoff.run_spec(settings, plan, volume.path)
        spec.env |= {"SLIPWAY_INSTANCE": f"{phase.name}.1", "SLIPWAY_PROCESS_TYPE": phase.name}
        spec.timeout = settings.release_timeout
        spec.labels.update(labels or {})
        result = adapters.runtime.run_build(spec, lambda line: log(f"       {line}"))
    finally:
        _destroy_quietly(adapters, plan.volume_name)
    if result.timed_out:
        raise PhaseFailed(
            f"The {phase.name} phase took longer than {settings.release_timeout} seconds "
            "and was stopped."
        )
    if result.exit_code != 0:
        raise PhaseFailed(
            f"The {phase.name} phase failed (exit code {result.exit_code}); the log says why."
        )
    log(f"       {phase.name} phase finished in {result.duration:.0f} s")


def _phase_plan(target: PhaseTarget, phase: Phase) -> oneoff.RunPlan:
    # Named and labelled like a one-off run, so a crash's leftovers are swept the same way.
    name = f"slipway-run-{target.app.name}-{int(time.time())}-{secrets.token_hex(3)}"
    return oneoff.RunPlan(
        target.app.name,
        target.version,
        target.stack,
        target.slug_path,
        dict(target.config),
        target.app.memory,
        list(phase.command),
        name,
        target.node_version,
        target.spaces,
    )


def _destroy_quietly(adapters: Adapters, name: str) -> None:
    try:
        adapters.volumes.destroy(name)
    except Exception as exc:  # a later one-off run sweeps it
        logger.warning("could not remove the release phase volume %s: %s", name, exc)
