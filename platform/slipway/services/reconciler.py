"""The reconciler: make what runs (Docker, volumes, nginx) match what the database says.

It runs on start and periodically. Each pass:

1. fails deploys whose worker died (stale heartbeat), and queued deploys no worker started in
   time, and removes their build containers, build volumes and half-started instances;
2. removes instances left ``starting`` with no deploy or roll running (a worker died while it
   started them: they would crash-loop until the next deploy), then restarts instances that
   should run but whose container is gone or exited (same release), never those of a sleeping
   app's sleeping types;
3. removes containers and volumes no row owns;
4. rewrites the router configuration;
5. records a nearly-full event for each space that reached 90% of its size.

Apps whose deploy lock is held are skipped in step 2: the deploy in progress owns them.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.adapters import Adapters
from slipway.config import Settings
from slipway.models import App, Deploy, Instance
from slipway.models.deploy import QUEUED, TERMINAL_STATES
from slipway.models.instance import CRASHED, LIVE, STARTING, STOPPED
from slipway.runtime.base import LABEL_INSTANCE, LABEL_KIND, ContainerInfo
from slipway.services import instances, processes, spaces
from slipway.services.builds import LABEL_DEPLOY, build_volume_names
from slipway.services.deploy_cancel import clean_up
from slipway.services.deploys import DeployLog, app_lock, mark_failed
from slipway.services.errors import Conflict, SlipwayError
from slipway.services.routing import routes_from_db

logger = logging.getLogger(__name__)

WORKER_DIED = "The worker running this deploy stopped before it finished; deploy again."
RECHECK_TIMEOUT = 2.0
NEVER_PICKED = "No worker picked this deploy up in time; deploy again."


def not_started(settings: Settings) -> str:
    """Why a queued deploy that no worker took failed, and what to check."""
    return (
        f"No worker started this deploy within {settings.deploy_start_timeout} seconds. "
        "Check that the platform's worker runs (`slipway server status`) and uses the same "
        "SLIPWAY_REDIS_URL and SLIPWAY_DATA_DIR as the API, then deploy again."
    )


@dataclass
class ReconcileReport:
    failed_deploys: list[int] = field(default_factory=list)
    removed_half_started: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    removed_containers: list[str] = field(default_factory=list)
    removed_volumes: list[str] = field(default_factory=list)
    nearly_full: list[str] = field(default_factory=list)  # spaces whose event fired


def reconcile(
    session: Session, adapters: Adapters, settings: Settings, on_start: bool = False
) -> ReconcileReport:
    """One pass; ``on_start`` also remounts volumes a host restart left unmounted."""
    report = ReconcileReport()
    if on_start:
        adapters.volumes.recover()
    report.failed_deploys = fail_stale_deploys(session, adapters, settings)
    report.removed_half_started, report.restarted = restart_missing(session, adapters, settings)
    report.removed_containers = remove_orphan_containers(session, adapters, settings)
    report.removed_volumes = remove_orphan_volumes(session, adapters)
    # Routes are read in a fresh transaction, and read again after they are applied: a deploy
    # that switched meanwhile must not be overwritten by this pass's older view of the rows.
    for _ in range(3):
        session.commit()
        routes = routes_from_db(session)
        adapters.router.apply(routes)
        session.commit()
        if routes_from_db(session) == routes:
            break
    # Last: a space provider's failure must never keep apps from being routed.
    report.nearly_full = spaces.check_nearly_full(session, adapters)
    session.commit()
    return report


# ----------------------------------------------------------------------------- deploys


def fail_stale_deploys(session: Session, adapters: Adapters, settings: Settings) -> list[int]:
    """Fail unfinished deploys whose heartbeat stopped, and queued ones no worker started.

    A queued deploy can wait its turn while the workers run other deploys; it fails after
    ``deploy_start_timeout`` only when no deploy kept a worker busy (a live worker would have
    taken it), and in any case after the lock and build time limits.
    """
    now = datetime.now(UTC)
    stale = now - timedelta(seconds=settings.deploy_stale_after)
    not_taken = now - timedelta(seconds=settings.deploy_start_timeout)
    never = now - timedelta(seconds=settings.deploy_lock_timeout + settings.build_timeout)
    unfinished = session.scalars(select(Deploy).where(Deploy.state.not_in(TERMINAL_STATES))).all()
    busy = any(d.heartbeat_at is not None and d.heartbeat_at >= stale for d in unfinished)
    failed = []
    for deploy in unfinished:
        waiting = deploy.heartbeat_at is None and deploy.state == QUEUED
        if deploy.heartbeat_at is not None and deploy.heartbeat_at < stale:
            _fail(session, adapters, settings, deploy, WORKER_DIED)
        elif waiting and not busy and deploy.created_at < not_taken:
            _fail(session, adapters, settings, deploy, not_started(settings))
        elif waiting and deploy.created_at < never:
            _fail(session, adapters, settings, deploy, NEVER_PICKED)
        else:
            continue
        failed.append(deploy.id)
    return failed


def _fail(
    session: Session, adapters: Adapters, settings: Settings, deploy: Deploy, error: str
) -> None:
    logger.warning("deploy %s: %s", deploy.id, error)
    clean_up(session, adapters, settings, deploy)
    mark_failed(session, deploy, error)
    session.commit()
    if deploy.log_path:
        log = DeployLog(Path(deploy.log_path))
        log(f"-----> Deploy failed: {error}")
        log.close()


# ----------------------------------------------------------------------------- instances


def _by_instance(containers: list[ContainerInfo]) -> dict[str, ContainerInfo]:
    return {
        c.labels[LABEL_INSTANCE]: c
        for c in containers
        if c.labels.get(LABEL_KIND) == "instance" and LABEL_INSTANCE in c.labels
    }


def restart_missing(
    session: Session, adapters: Adapters, settings: Settings
) -> tuple[list[str], list[str]]:
    """Remove half-started instances, then start a new container (same release, same volume)
    for instances whose container is gone. Returns (removed, restarted) container names."""
    containers = _by_instance(adapters.runtime.list(instances.platform_labels(settings)))
    removed: list[str] = []
    restarted: list[str] = []
    for app in session.scalars(select(App).order_by(App.name)).all():
        try:
            with app_lock(settings, app.id, timeout=0):
                removed += remove_half_started(session, adapters, app)
                restarted += _restart_app(session, adapters, settings, app, containers)
        except Conflict:
            logger.info("%s: a deploy holds the lock; instances left to it", app.name)
    return removed, restarted


def remove_half_started(session: Session, adapters: Adapters, app: App) -> list[str]:
    """Retire instances still ``starting`` while the app's deploy lock is free (the caller
    holds it): only a deploy or roll starts instances, under that lock, and it either makes them
    live or removes them. These were left by a worker that died, and are no part of the
    current release's formation."""
    query = select(Instance).where(Instance.app_id == app.id, Instance.state == STARTING)
    removed = []
    for instance in session.scalars(query).all():
        name = instance.container_name
        logger.warning("%s: removing %s, left half-started by a worker that died", app.name, name)
        try:
            instances.retire(session, adapters, instance)
            removed.append(name)
        except Exception as exc:  # tried again on the next pass
            logger.warning("%s: could not remove %s: %s", app.name, name, exc)
            session.rollback()
    return removed


def _restart_app(
    session: Session,
    adapters: Adapters,
    settings: Settings,
    app: App,
    containers: dict[str, ContainerInfo],
) -> list[str]:
    states = (LIVE, CRASHED, STOPPED)
    wanted = select(Instance).where(Instance.app_id == app.id, Instance.state.in_(states))
    # A sleeping app's sleeping types start only when it wakes (a wake retires what is left).
    asleep = instances.asleep_types(app)
    restarted = []
    for instance in session.scalars(wanted).all():
        if instance.process_type in asleep:
            continue
        info = containers.get(str(instance.id))
        if instance.state == STOPPED:
            _keep_stopped(session, adapters, app, instance, info)
            continue
        if info is not None and info.status == "running":
            _follow_port(session, app, instance, info)
            _recheck(session, adapters, app, instance)
            continue
        if info is not None:
            _stop_quietly(adapters, info)
        logger.info("%s: restarting %s", app.name, instance.container_name)
        try:
            instances.launch(session, adapters, settings, app, instance)
            live = instances.is_live(adapters, app, instance, settings.start_timeout)
        except Exception as exc:
            logger.warning("%s: could not restart %s: %s", app.name, instance.container_name, exc)
            session.rollback()
            live = False
        instance.state = LIVE if live else CRASHED
        session.commit()
        restarted.append(instance.container_name)
    return restarted


def _follow_port(session: Session, app: App, instance: Instance, info: ContainerInfo) -> None:
    """Docker publishes a restarted container (dockerd or host restart, `docker restart`) on a
    new free port: record it, so the health check and the router reach the instance again."""
    if info.host_port is not None and info.host_port != instance.host_port:
        logger.info(
            "%s: %s now listens on port %s", app.name, instance.container_name, info.host_port
        )
        instance.host_port = info.host_port
        session.commit()


def _keep_stopped(
    session: Session, adapters: Adapters, app: App, instance: Instance, info: ContainerInfo | None
) -> None:
    """A process stopped with ``ps:stop`` stays stopped when Docker restarts its container (a
    dockerd or host restart): supervisord starts every program again, so stop it again, and
    follow the new port so that ``ps:start`` routes to it."""
    if info is None or info.status != "running" or info.host_port in (None, instance.host_port):
        return
    _follow_port(session, app, instance, info)
    logger.info("%s: %s was stopped; stopping it again", app.name, instance.container_name)
    try:
        processes.supervisorctl(adapters, instance, ["stop", instance.process_type])
    except SlipwayError as exc:
        logger.warning("%s: could not stop %s: %s", app.name, instance.container_name, exc)


def _recheck(session: Session, adapters: Adapters, app: App, instance: Instance) -> None:
    """A crashed instance whose container runs again (supervisord restarted it) goes live."""
    if instance.state == CRASHED and instances.is_live(adapters, app, instance, RECHECK_TIMEOUT):
        logger.info("%s: %s answers again", app.name, instance.container_name)
        instance.state = LIVE
        session.commit()


# ----------------------------------------------------------------------------- orphans


def remove_orphan_containers(session: Session, adapters: Adapters, settings: Settings) -> list[str]:
    """Stop this platform's containers that no instance row (or unfinished deploy) owns."""
    # Listed before the rows are read: a row is always committed before its container starts.
    containers = adapters.runtime.list(instances.platform_labels(settings))
    owned_instances = {str(i) for i in session.scalars(select(Instance.id))}
    running_deploys = {
        str(d)
        for d in session.scalars(select(Deploy.id).where(Deploy.state.not_in(TERMINAL_STATES)))
    }
    removed = []
    for container in containers:
        kind = container.labels.get(LABEL_KIND)
        if kind == "instance":
            orphan = container.labels.get(LABEL_INSTANCE) not in owned_instances
        elif kind == "build":
            orphan = container.labels.get(LABEL_DEPLOY) not in running_deploys
        else:
            continue  # one-off runs and anything else are not the reconciler's business
        if orphan and _stop_quietly(adapters, container):
            removed.append(container.name)
    return removed


def _stop_quietly(adapters: Adapters, container: ContainerInfo) -> bool:
    try:
        adapters.runtime.stop(container.container_id)
        return True
    except Exception as exc:  # one stubborn container must not stop the whole pass
        logger.warning("could not stop %s: %s", container.name, exc)
        return False


def remove_orphan_volumes(session: Session, adapters: Adapters) -> list[str]:
    """Destroy instance and build volumes that no row owns."""
    volumes = adapters.volumes.list()
    owned = set(session.scalars(select(Instance.volume_name)))
    running_deploys = set(
        session.scalars(select(Deploy.id).where(Deploy.state.not_in(TERMINAL_STATES)))
    )
    owned |= {name for d in running_deploys for name in build_volume_names(d)}
    removed = []
    for volume in volumes:
        ours = volume.name.startswith(("app-", "build-"))
        if ours and volume.name not in owned:
            with contextlib.suppress(Exception):
                adapters.volumes.destroy(volume.name)
                removed.append(volume.name)
    return removed
