"""Deploys: accept a source archive, then build, release and start it, one deploy per app at a time.

The state moves ``queued → building → releasing → starting → succeeded | failed`` and is committed
at every step, so the API shows progress while the worker runs. Every line goes to the deploy's
log file. A heartbeat thread stamps ``heartbeat_at`` so the reconciler can tell a slow deploy from
one whose worker died.

A user may cancel a deploy at any step (``services.deploy_cancel``): the state becomes
``cancelled``. The worker notices: every step moves the state only from an unfinished one, the
heartbeat reads the state and stops the deploy's build or release-phase container, and the
router switch happens only after one last look, in the same transaction. The worker then undoes
what it started, as it does for a failure.

Serialisation: an exclusive ``flock`` on ``<data dir>/locks/<platform id>/app-<id>.lock``. Workers
of this platform share it; a waiting deploy stays ``queued`` until the lock is free (bounded by
``deploy_lock_timeout``). The kernel drops the lock when a worker dies, so nothing stays stuck.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from slipway.adapters import Adapters
from slipway.config import Settings
from slipway.locks import file_lock
from slipway.models import App, Deploy, Release
from slipway.models import event as kinds
from slipway.models.deploy import (
    BUILDING,
    CANCELLED,
    FAILED,
    QUEUED,
    RELEASING,
    STARTING,
    SUCCEEDED,
    TERMINAL_STATES,
)
from slipway.runtime.base import ContainerInfo, Mount
from slipway.services import appjson, archives, builds, instances, prune, releases
from slipway.services.artifacts import ArtifactStore
from slipway.services.errors import SlipwayError, TooLarge

logger = logging.getLogger(__name__)

DEPLOY_TASK = "slipway.deploy"


class DeployCancelled(SlipwayError):
    """The deploy was cancelled while the worker ran it; the worker stops and undoes its steps."""


def _now() -> datetime:
    return datetime.now(UTC)


def log_dir(settings: Settings) -> Path:
    return settings.data_dir / "logs" / "deploys"


# ----------------------------------------------------------------------------- accepting


def accept_tarball(
    session: Session,
    app: App,
    stream: IO[bytes],
    content_length: int | None,
    settings: Settings,
    artifacts: ArtifactStore,
    commit: str | None = None,
) -> Deploy:
    """Store an uploaded .tar.gz (size-capped, every entry checked) and queue its deploy.

    With ``commit`` the archive is that git commit's (the git hook uploads it): a "git" deploy.
    """
    limit = settings.max_upload_size
    if content_length is not None and content_length > limit:
        raise TooLarge(f"The upload is larger than the limit of {limit // 1024**2} MB.")
    path = artifacts.save_source(app.name, stream, limit)
    kind = "tarball" if commit is None else "git"
    return _queue(session, app, path, kind, commit, settings, artifacts)


def _queue(
    session: Session,
    app: App,
    path: Path,
    kind: str,
    commit: str | None,
    settings: Settings,
    artifacts: ArtifactStore,
) -> Deploy:
    try:
        info = archives.inspect_archive(path, settings.build_volume_size)
    except SlipwayError:
        artifacts.delete(path)
        raise
    deploy = Deploy(
        app_id=app.id, state=QUEUED, source_path=str(path), source_kind=kind, commit=commit
    )
    session.add(deploy)
    session.flush()
    log_path = log_dir(settings) / f"{deploy.id}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text(f"-----> Source received: {info.files} files ({kind})\n")
    deploy.log_path = str(log_path)
    releases.enqueue(session, DEPLOY_TASK, deploy.id)
    return deploy


# ----------------------------------------------------------------------------- running


class DeployLog:
    """Appends lines to the deploy's log file, flushed at once so the API can stream them."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8", errors="replace")

    def __call__(self, line: str) -> None:
        self._file.write(line.rstrip("\n") + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class Heartbeat:
    """Stamps ``heartbeat_at`` every few seconds from its own thread and connection.

    Each beat also reads the state: once the deploy is ``cancelled``, :attr:`cancelled` is set
    and ``on_cancel`` runs once (it stops the deploy's build or release-phase container, so the
    step waiting on it ends at once).
    """

    def __init__(
        self,
        engine: Engine,
        deploy_id: int,
        interval: float,
        on_cancel: Callable[[], None] | None = None,
    ) -> None:
        self._engine, self._deploy_id, self._interval = engine, deploy_id, interval
        self._on_cancel = on_cancel
        self.cancelled = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"heartbeat-{deploy_id}", daemon=True
        )

    def __enter__(self) -> Heartbeat:
        self.beat()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self._interval + 5)

    def beat(self) -> None:
        stamp = update(Deploy).where(Deploy.id == self._deploy_id).values(heartbeat_at=_now())
        with Session(self._engine) as session:
            session.execute(stamp)
            state = session.scalar(select(Deploy.state).where(Deploy.id == self._deploy_id))
            session.commit()
        if state == CANCELLED and not self.cancelled.is_set():
            self.cancelled.set()
            logger.info("deploy %s was cancelled", self._deploy_id)
            if self._on_cancel is not None:
                self._on_cancel()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.beat()
            except Exception as exc:  # a busy database skips a beat; the next one will do
                logger.warning("heartbeat of deploy %s failed: %s", self._deploy_id, exc)


def lock_path(settings: Settings, app_id: int) -> Path:
    """The app's deploy lock; it names the platform, like every lock and broker key."""
    return settings.data_dir / "locks" / settings.platform_id / f"app-{app_id}.lock"


@contextlib.contextmanager
def app_lock(
    settings: Settings, app_id: int, timeout: float, give_up: Callable[[], bool] | None = None
) -> Iterator[None]:
    """Hold the app's deploy lock; Conflict when another holder keeps it past ``timeout`` (or
    while waiting, once ``give_up()`` is true)."""
    busy = f"Another deploy of this app was still running after {timeout:.0f} seconds."
    with file_lock(lock_path(settings, app_id), timeout, busy, give_up or (lambda: False)):
        yield


def deploy_containers(
    adapters: Adapters, settings: Settings, deploy_id: int
) -> list[ContainerInfo]:
    """The deploy's build and release-phase containers on this platform."""
    labels = {**instances.platform_labels(settings), builds.LABEL_DEPLOY: str(deploy_id)}
    return adapters.runtime.list(labels=labels)


def stop_deploy_containers(adapters: Adapters, settings: Settings, deploy_id: int) -> None:
    """Stop (and remove) the deploy's build and release-phase containers; errors are logged."""
    try:
        for container in deploy_containers(adapters, settings, deploy_id):
            adapters.runtime.stop(container.container_id)
    except Exception as exc:  # the reconciler removes build containers of finished deploys
        logger.warning("could not stop the containers of deploy %s: %s", deploy_id, exc)


def run_deploy(session: Session, deploy_id: int, adapters: Adapters, settings: Settings) -> None:
    """Take a queued deploy to ``succeeded`` or ``failed``; anything else is left alone."""
    deploy = session.get(Deploy, deploy_id)
    if deploy is None or deploy.state != QUEUED:
        return
    log = DeployLog(Path(deploy.log_path or log_dir(settings) / f"{deploy_id}.log"))
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    heartbeat = Heartbeat(
        engine,
        deploy_id,
        settings.heartbeat_interval,
        on_cancel=lambda: stop_deploy_containers(adapters, settings, deploy_id),
    )
    try:
        with heartbeat:
            _run_locked(session, deploy, adapters, settings, log, heartbeat.cancelled)
    finally:
        log.close()


def _run_locked(
    session: Session,
    deploy: Deploy,
    adapters: Adapters,
    settings: Settings,
    log: DeployLog,
    cancelled: threading.Event,
) -> None:
    try:
        timeout = settings.deploy_lock_timeout
        with app_lock(settings, deploy.app_id, timeout, give_up=cancelled.is_set):
            session.refresh(deploy)  # the reconciler may have failed it while we waited
            if deploy.state != QUEUED:
                return
            _pipeline(session, deploy, adapters, settings, log)
    except SlipwayError as exc:
        _fail(session, deploy, str(exc), log)
    except Exception as exc:
        logger.exception("deploy %s failed", deploy.id)
        _fail(session, deploy, f"The deploy stopped because of an internal error: {exc}", log)


def _pipeline(
    session: Session, deploy: Deploy, adapters: Adapters, settings: Settings, log: DeployLog
) -> None:
    app = deploy.app
    first = app.current_release_id is None
    _set_state(session, deploy, BUILDING)
    source = Path(deploy.source_path)
    output = builds.build(adapters, settings, app.name, deploy.id, source, log, app.config)
    try:
        _set_state(session, deploy, RELEASING)
        config = dict(app.config)
        default_size = settings.space_default_size
        appjson.ensure_spaces(session, adapters, app, output.app_json.spaces, default_size, log)
        _release_phase(session, deploy, adapters, settings, output, config, log)
        begin_write(session, deploy.id)
        _check_not_cancelled(session, deploy)
    except Exception:
        adapters.artifacts.delete(output.slug_path)  # no release will ever point at it
        if output.assets_path:
            adapters.artifacts.delete(output.assets_path)
        raise
    release = releases.create_release(
        session,
        app,
        slug_path=str(output.slug_path),
        assets_path=str(output.assets_path or ""),
        stack=output.stack,
        node_version=output.node_version,
        config=config,
        process_types=output.process_types,
        description=_describe(deploy),
        health_checks=[check.to_dict() for check in output.app_json.web_checks],
        deploy_id=deploy.id,
    )
    deploy.release_id = release.id
    app.formation = appjson.merge_formation(dict(app.formation), output.app_json.formation, first)
    appjson.apply_deploy_strategy(app, output.app_json.deploy_strategy, first, log)
    session.commit()
    log(f"-----> Released v{release.version}")
    _set_state(session, deploy, STARTING)
    guard = lambda: _last_look_before_switch(session, deploy)  # noqa: E731
    instances.roll(session, adapters, settings, app, release, log, before_switch=guard)
    if first and output.app_json.postdeploy:
        _postdeploy(session, adapters, settings, app, release, output.app_json.postdeploy, log)
    _succeed(session, deploy, release)
    log(f"-----> v{release.version} is live")
    _prune_quietly(session, app, adapters, settings)


def _release_phase(
    session: Session,
    deploy: Deploy,
    adapters: Adapters,
    settings: Settings,
    output: builds.BuildOutput,
    config: dict[str, str],
    log: DeployLog,
) -> None:
    """Run predeploy and the Procfile's release before the release row exists: a failure
    leaves no release behind, and the old one keeps serving."""
    phases = releases.release_phases(output.process_types, output.app_json.predeploy)
    if not phases:
        return
    app = deploy.app
    target = releases.PhaseTarget(
        app,
        releases.next_version(session, app),
        output.stack,
        output.slug_path,
        config,
        output.node_version,
        space_mounts(session, adapters, app),
    )
    labels = {builds.LABEL_DEPLOY: str(deploy.id)}  # the reconciler stops it if we die
    session.commit()  # end the read: a snapshot held through the phase cannot write after it
    releases.run_phases(adapters, settings, target, phases, log, labels)


def _postdeploy(
    session: Session,
    adapters: Adapters,
    settings: Settings,
    app: App,
    release: Release,
    command: str,
    log: Log,
) -> None:
    """app.json's postdeploy, once after the first deploy; a failure is only a warning."""
    target = releases.PhaseTarget(
        app,
        release.version,
        release.stack,
        Path(release.slug_path),
        dict(release.config),
        release.node_version,
        space_mounts(session, adapters, app),
    )
    session.commit()  # end the read before the (long) phase
    phase = releases.Phase("postdeploy", ["bash", "-c", command])
    try:
        releases.run_phase(adapters, settings, target, phase, log)
    except SlipwayError as exc:
        log(f"       warning: {exc} The release is live anyway.")


def space_mounts(session: Session, adapters: Adapters, app: App) -> tuple[Mount, ...]:
    """Every space of the app, for its release phase (one not mounted fails the phase)."""
    from slipway.services import spaces  # late: spaces -> events -> tasks -> deploys

    return tuple(spaces.space_mounts(session, adapters, app, None))


def _succeed(session: Session, deploy: Deploy, release: Release) -> None:
    begin_write(session, deploy.id)
    deploy.finished_at = _now()
    deploy.state = SUCCEEDED
    data = {"deploy_id": deploy.id, "version": release.version}
    record_released(session, deploy.app, release)
    message = f"Deploy {deploy.id} succeeded: v{release.version} is live."
    record_event(
        session, deploy.app, kinds.DEPLOY_SUCCEEDED, message, data, f"deploy:{deploy.id}:succeeded"
    )
    session.commit()


def record_event(
    session: Session, app: App, type: str, message: str, data: dict[str, Any], key: str
) -> None:
    """``events.record_event``, imported late: it pulls in the task modules, which import us."""
    from slipway.services import events

    events.record_event(session, app, type, message, data, dedupe_key=key)


def record_released(session: Session, app: App, release: Release) -> None:
    """A ``released`` event, once per release that went live."""
    message = f"v{release.version} is live: {release.description}".rstrip(": ")
    data = {"version": release.version, "release_id": release.id}
    record_event(session, app, kinds.RELEASED, message, data, f"released:{release.id}")


def _describe(deploy: Deploy) -> str:
    if deploy.commit:
        return f"Deploy {deploy.id} of {deploy.commit[:12]}"
    return f"Deploy {deploy.id} ({deploy.source_kind})"


def begin_write(session: Session, deploy_id: int) -> None:
    """Open the transaction with a write (a heartbeat stamp).

    On SQLite a transaction that read first cannot write once another connection (the
    heartbeat thread) has committed; one that starts by writing waits for the lock instead.
    """
    session.commit()  # ends a read snapshot (nothing is pending where this is called)
    stamp = update(Deploy).where(Deploy.id == deploy_id).values(heartbeat_at=_now())
    session.execute(stamp)


def _set_state(session: Session, deploy: Deploy, state: str) -> None:
    """Move to the next step, only from a step that may lead there: a deploy cancelled
    meanwhile raises :class:`DeployCancelled` instead (and a queued one is never started)."""
    session.commit()  # the update below is the transaction's first statement
    allowed = [QUEUED] if state == BUILDING else [QUEUED, BUILDING, RELEASING, STARTING]
    values: dict[str, Any] = {"state": state}
    if state == BUILDING:
        values["started_at"] = _now()
    moved = session.execute(
        update(Deploy).where(Deploy.id == deploy.id, Deploy.state.in_(allowed)).values(**values)
    )
    session.commit()
    if getattr(moved, "rowcount", 1) == 0:
        raise DeployCancelled(f"Deploy {deploy.id} was cancelled.")
    session.refresh(deploy)


def _check_not_cancelled(session: Session, deploy: Deploy) -> None:
    """Raise :class:`DeployCancelled` once the deploy's row says so."""
    session.refresh(deploy)
    if deploy.state == CANCELLED:
        raise DeployCancelled(f"Deploy {deploy.id} was cancelled.")


def _last_look_before_switch(session: Session, deploy: Deploy) -> None:
    """Lock the deploy's row (a write opens the transaction) and check it is not cancelled.

    The router switch and ``current_release_id`` are committed in this same transaction, so a
    cancel either lands before it (and the new instances are undone) or finds the release live.
    """
    begin_write(session, deploy.id)
    _check_not_cancelled(session, deploy)


def _fail(session: Session, deploy: Deploy, error: str, log: DeployLog) -> None:
    session.rollback()
    begin_write(session, deploy.id)
    session.refresh(deploy)
    if deploy.state == CANCELLED:
        session.commit()
        log("-----> The deploy was cancelled: what it had started is removed")
        return
    if deploy.state in TERMINAL_STATES:
        return
    mark_failed(session, deploy, error)
    session.commit()
    log(f"-----> Deploy failed: {error}")


def mark_failed(session: Session, deploy: Deploy, error: str) -> None:
    """Set the deploy ``failed`` and record its ``deploy_failed`` event (webhooks hear of it)."""
    deploy.state, deploy.error, deploy.finished_at = FAILED, error, _now()
    message = f"Deploy {deploy.id} failed: {error}"
    data = {"deploy_id": deploy.id, "error": error}
    record_event(
        session, deploy.app, kinds.DEPLOY_FAILED, message, data, f"deploy:{deploy.id}:failed"
    )


def _prune_quietly(session: Session, app: App, adapters: Adapters, settings: Settings) -> None:
    try:
        prune.prune_app(session, app, adapters.artifacts, settings.keep_releases, settings)
        session.commit()
    except Exception as exc:  # disk hygiene never fails a deploy that is already live
        logger.warning("pruning %s failed: %s", app.name, exc)
        session.rollback()


# ----------------------------------------------------------------------------- rolling


def run_roll(
    session: Session, app_id: int, release_id: int, adapters: Adapters, settings: Settings
) -> None:
    """Move an app onto a release (config change, rollback) or to its formation (scale)."""
    with app_lock(settings, app_id, settings.deploy_lock_timeout):
        app = session.get(App, app_id)
        release = session.get(Release, release_id)
        if app is None or release is None:
            return
        session.refresh(app)
        current = app.current_release
        if current is not None and current.version > release.version:
            logger.info(
                "%s: v%s is already newer than v%s", app.name, current.version, release.version
            )
            return
        running = instances.running_instances(session, app)
        log = _logger_for(app.name)
        if current is None or current.id != release.id:
            _roll_new_release(session, adapters, settings, app, release, log)
        elif any(i.release_id != release.id for i in running):
            instances.roll(session, adapters, settings, app, release, log)
        else:
            instances.scale_to_formation(session, adapters, settings, app, log)


def _roll_new_release(
    session: Session, adapters: Adapters, settings: Settings, app: App, release: Release, log: Log
) -> None:
    """A config change or rollback: its release phase, then the roll; events either way.

    A failure is recorded as a ``deploy_failed`` event and raised again for the task's log.
    """
    phases = releases.release_phases(release.process_types, None)
    target = releases.PhaseTarget(
        app,
        release.version,
        release.stack,
        Path(release.slug_path),
        dict(release.config),
        release.node_version,
    )
    session.commit()  # end the read: a snapshot held through the phase cannot write after it
    try:
        if phases:
            target = replace(target, spaces=space_mounts(session, adapters, app))
            session.commit()
        releases.run_phases(adapters, settings, target, phases, log)
        instances.roll(session, adapters, settings, app, release, log)
    except SlipwayError as exc:
        session.rollback()
        message = f"v{release.version} ({release.description}) was not rolled out: {exc}"
        data = {"version": release.version, "release_id": release.id, "error": str(exc)}
        record_event(session, app, kinds.DEPLOY_FAILED, message, data, f"roll:{release.id}:failed")
        session.commit()
        log(f"-----> {message}")
        raise
    record_released(session, app, release)
    session.commit()


Log = instances.Log


def _logger_for(app: str) -> instances.Log:
    return lambda line: logger.info("%s: %s", app, line.strip("- "))
