"""Instances: start them, wait until they are live, switch the router, drain the old ones, scale.

The order is what makes a deploy safe: new instances start next to the old ones, and the router
moves only once every new ``web`` instance answers. Until then nothing the old release serves is
touched; a failure stops only what this step started.

Instance rows are committed *before* their container or volume exists, so the reconciler never
mistakes a container that is being started for an orphan.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from slipway.adapters import Adapters
from slipway.appuser import made_for_another_uid
from slipway.config import Settings
from slipway.models import App, Instance, Release
from slipway.models.app import STOP_FIRST
from slipway.models.instance import CRASHED, DRAINING, LIVE, STARTING, STOPPED
from slipway.runtime import platform_id as runtime_platform_id
from slipway.runtime.base import (
    LABEL_APP,
    LABEL_INSTANCE,
    LABEL_KIND,
    LABEL_PROCESS,
    LABEL_RELEASE,
    InstanceSpec,
    Limits,
    Mount,
)
from slipway.services import assets, layout
from slipway.services.appjson import HealthCheck
from slipway.services.archives import PROCESS_TYPE, RELEASE_TYPE
from slipway.services.errors import Invalid, SlipwayError
from slipway.services.logs import LogSource, keep_logs, read_tail
from slipway.services.routing import routes_from_db
from slipway.services.runtimes import node
from slipway.services.stacks import run_image

logger = logging.getLogger(__name__)

Log = Callable[[str], None]
# States whose container should exist (a stopped instance's supervisord still runs).
RUNNING_STATES = (STARTING, LIVE, CRASHED, STOPPED)
MAX_PER_TYPE = 10
LOG_TAIL = 30


class StartFailed(SlipwayError):
    """New instances did not come up; the ones already serving were left alone."""


# ----------------------------------------------------------------------------- one instance

# Several platforms may share one Docker engine (tests, staging): each owns only its containers.
LABEL_PLATFORM = "io.slipway.platform"


def platform_id(settings: Settings) -> str:
    """A short, stable name of this platform (the runtime labels and names containers by it)."""
    return runtime_platform_id(settings)


def platform_labels(settings: Settings) -> dict[str, str]:
    """Labels on every container this platform starts; filter ``runtime.list`` with them."""
    # The runtime also sets the managed label to the same id on every container it starts.
    return {LABEL_PLATFORM: platform_id(settings)}


def instance_labels(
    settings: Settings, app: App, release: Release, instance: Instance
) -> dict[str, str]:
    return {
        **platform_labels(settings),
        LABEL_KIND: "instance",
        LABEL_APP: app.name,
        LABEL_RELEASE: str(release.version),
        LABEL_INSTANCE: str(instance.id),
        LABEL_PROCESS: instance.process_type,
    }


def add_instance(
    session: Session, app: App, release: Release, process_type: str, index: int
) -> Instance:
    """A committed ``starting`` row with its container and volume names decided."""
    instance = Instance(
        app_id=app.id,
        release_id=release.id,
        process_type=process_type,
        index=index,
        container_name="",
        volume_name="",
        state=STARTING,
    )
    session.add(instance)
    session.flush()
    instance.container_name = f"slipway-{app.name}-{instance.id}"
    instance.volume_name = f"app-{app.name}-{instance.id}"
    session.commit()
    return instance


def launch(
    session: Session, adapters: Adapters, settings: Settings, app: App, instance: Instance
) -> None:
    """Give a row its volume (reused when it survived) and a fresh container."""
    from slipway.services import spaces  # late: spaces -> events -> tasks -> deploys -> here

    release = instance.release
    env = layout.run_env(
        dict(release.config),
        app.name,
        f"{instance.process_type}.{instance.index}",
        instance.process_type,
    )
    mounts = assets.mounts(settings, app.name, release)  # /mnt/assets, read-only
    # Its spaces at /spaces/<slot>/tree; one that is not mounted fails the start (SpaceFailed).
    mounts += spaces.space_mounts(session, adapters, app, instance.process_type)
    if release.node_version:
        registry = node.registry_of(settings, adapters.node_releases)
        node.ensure(settings, registry, release.node_version)  # a new host fetches it once
        mounts.append(node.mount(settings, release.node_version))
        env["PATH"] = node.path()
    volume = adapters.volumes.get(instance.volume_name)
    if volume is not None and made_for_another_uid(volume.path):
        # Its mop had an earlier uid and this container's could not write it: start afresh,
        # as a deploy's new instance would.
        adapters.volumes.destroy(instance.volume_name)
        volume = None
    if volume is None:
        volume = adapters.volumes.create(instance.volume_name, settings.instance_volume_size)
        layout.prepare_instance_volume(
            volume.path, Path(release.slug_path), instance.process_type, env
        )
    spec = InstanceSpec(
        image=run_image(settings, release.stack),
        name=instance.container_name,
        mounts=[Mount(volume.path, layout.RUN_ROOT), *mounts],
        env=env,
        limits=Limits(memory=app.memory, pids=settings.instance_pids),
        port=layout.APP_PORT,
        labels=instance_labels(settings, app, release, instance),
    )
    running = adapters.runtime.start_instance(spec)
    instance.container_id = running.container_id
    instance.host_port = running.host_port
    session.commit()


def is_live(adapters: Adapters, app: App, instance: Instance, timeout: float) -> bool:
    """Web instances must accept connections (and pass the health check); others just run."""
    if instance.process_type != "web":
        return True
    if instance.host_port is None:
        return False
    return adapters.runtime.wait_for_port(instance.host_port, timeout, app.health_check_path)


def passes_check(adapters: Adapters, host_port: int, check: HealthCheck) -> bool:
    """Up to ``check.attempts`` attempts, each waiting ``check.timeout`` seconds for a 2xx."""
    time.sleep(check.initial_delay)
    for attempt in range(check.attempts):
        if attempt:
            time.sleep(check.wait)
        if adapters.runtime.wait_for_port(host_port, check.timeout, check.path):
            return True
    return False


def retire(session: Session, adapters: Adapters, instance: Instance) -> None:
    """Stop the container, free the volume, forget the row."""
    instance_id, container_id, volume_name = (
        instance.id,
        instance.container_id,
        instance.volume_name,
    )
    if instance.state not in (DRAINING, STOPPED):
        # Committed first: the collector must not take this container's death for a crash.
        instance.state = DRAINING
    # Commit also ends any read snapshot: the stop is slow and on SQLite a transaction that read
    # before another connection wrote (the deploy heartbeat) could not delete the row after it.
    session.commit()
    if container_id:
        adapters.runtime.stop(container_id)
    adapters.volumes.destroy(volume_name)
    session.expunge(instance)
    session.execute(delete(Instance).where(Instance.id == instance_id))
    session.commit()


def failure_lines(adapters: Adapters, instance: Instance) -> list[str]:
    """The last lines the app and its supervisor printed, to explain a failed start."""
    lines: list[str] = []
    volume = adapters.volumes.get(instance.volume_name)
    if volume is not None:  # the app's own file: read beneath its volume, never through a link
        lines += read_tail(LogSource(instance.container_name, volume.path), LOG_TAIL)[0]
    if instance.container_id:
        try:
            lines += adapters.runtime.logs(instance.container_id, tail=LOG_TAIL).splitlines()
        except Exception as exc:  # diagnostics must never hide the real failure
            lines.append(f"(the container log could not be read: {exc})")
    return lines


# ----------------------------------------------------------------------------- groups


def running_instances(session: Session, app: App) -> list[Instance]:
    query = select(Instance).where(Instance.app_id == app.id, Instance.state.in_(RUNNING_STATES))
    return list(session.scalars(query.order_by(Instance.process_type, Instance.index)))


def formation_plan(app: App, release: Release, log: Log) -> list[tuple[str, int]]:
    """``(process type, count)`` pairs to run, web first; types the release lacks are skipped."""
    plan = []
    for process_type, count in sorted(app.formation.items(), key=lambda kv: kv[0] != "web"):
        if process_type == RELEASE_TYPE:
            continue
        if process_type != "web" and process_type not in release.process_types:
            if count:
                log(f"-----> Skipping {process_type}: the Procfile of v{release.version} lacks it")
            continue
        plan.append((process_type, int(count)))
    return plan


def start_group(
    session: Session,
    adapters: Adapters,
    settings: Settings,
    app: App,
    release: Release,
    wanted: list[tuple[str, int]],
    log: Log,
    checks: Sequence[HealthCheck] = (),
) -> list[Instance]:
    """Start ``(process type, index)`` instances and wait until all are live, or undo them.

    ``checks`` (app.json health checks) must pass on every new web instance too.
    """
    started: list[Instance] = []
    try:
        for process_type, index in wanted:
            instance = add_instance(session, app, release, process_type, index)
            started.append(instance)
            log(f"-----> Starting {process_type}.{index} of v{release.version}")
            launch(session, adapters, settings, app, instance)
        _wait_all_live(adapters, settings, app, started, log, checks)
    except Exception:
        session.rollback()
        for instance in started:
            _undo(session, adapters, instance, log)
        raise
    return started


def _wait_all_live(
    adapters: Adapters,
    settings: Settings,
    app: App,
    started: list[Instance],
    log: Log,
    checks: Sequence[HealthCheck],
) -> None:
    deadline = time.monotonic() + settings.start_timeout
    for instance in started:
        remaining = max(1.0, deadline - time.monotonic())
        problem = _start_problem(adapters, settings, app, instance, remaining, checks, log)
        name = f"{instance.process_type}.{instance.index}"
        if problem is None:
            where = f"on port {instance.host_port}" if instance.process_type == "web" else "running"
            log(f"       {name} is up {where}")
            continue
        log(f"-----> {name} did not come up; its last lines:")
        for line in failure_lines(adapters, instance):
            log(f"       {line}")
        raise StartFailed(problem)


def _start_problem(
    adapters: Adapters,
    settings: Settings,
    app: App,
    instance: Instance,
    timeout: float,
    checks: Sequence[HealthCheck],
    log: Log,
) -> str | None:
    """Why the instance is not live (one sentence), or None when it is."""
    if not is_live(adapters, app, instance, timeout):
        return _not_live_message(app, settings)
    if instance.process_type != "web" or instance.host_port is None:
        return None
    for check in checks:
        log(f"       health check of web.{instance.index}: {check.describe()}")
        if not passes_check(adapters, instance.host_port, check):
            return f"The new release did not pass its app.json health check {check.describe()}."
    return None


def _not_live_message(app: App, settings: Settings) -> str:
    if app.health_check_path:
        return (
            f"The new release did not listen on $PORT and answer {app.health_check_path} "
            f"within {settings.start_timeout} seconds."
        )
    return f"The new release did not listen on $PORT within {settings.start_timeout} seconds."


def _undo(session: Session, adapters: Adapters, instance: Instance, log: Log) -> None:
    try:
        session.refresh(instance)
        retire(session, adapters, instance)
    except Exception as exc:  # the reconciler removes whatever is left
        logger.warning("could not clean up instance %s: %s", instance.container_name, exc)
        log(f"       (cleanup of {instance.container_name} left to the reconciler: {exc})")


def switch_and_drain(
    session: Session,
    adapters: Adapters,
    settings: Settings,
    app: App,
    release: Release,
    new: list[Instance],
    old: list[Instance],
    log: Log,
    wakes: bool = True,
) -> None:
    """Route to ``new`` only, then give ``old`` a grace period and stop them.

    ``wakes``: the app runs its whole formation now (a deploy, config change, rollback or
    wake), so it is awake and active from this switch on; a scale leaves a sleeping app asleep.
    """
    for instance in new:
        instance.state = LIVE
    for instance in old:
        instance.state = DRAINING
    app.current_release_id = release.id
    if wakes:
        # In the switch's transaction: the routes below already send the app's requests to
        # its instances, not to the wake service.
        app.sleeping = False
        app.active_at = datetime.now(UTC)
    session.flush()
    try:
        adapters.router.apply(routes_from_db(session))
    except Exception as exc:
        session.rollback()
        for instance in new:
            _undo(session, adapters, instance, log)
        raise StartFailed(f"The router could not be updated: {exc}") from exc
    session.commit()
    log(f"-----> Traffic switched to v{release.version}")
    drain(session, adapters, settings, old, log)


def drain(
    session: Session, adapters: Adapters, settings: Settings, old: list[Instance], log: Log
) -> None:
    """Wait for in-flight requests to finish on instances no longer routed to, then stop them."""
    if not old:
        return
    for instance in old:
        instance.state = DRAINING
    session.commit()
    time.sleep(settings.drain_grace)
    for instance in old:
        log(f"-----> Stopping {instance.process_type}.{instance.index} of the previous release")
        keep_logs(settings, adapters.volumes, instance)  # readable for a while after the deploy
        try:
            retire(session, adapters, instance)
        except Exception as exc:
            logger.warning("could not stop %s: %s", instance.container_name, exc)


# ----------------------------------------------------------------------------- roll and scale


def web_checks(release: Release) -> tuple[HealthCheck, ...]:
    """The app.json startup checks the release was built with."""
    return tuple(HealthCheck.from_dict(check) for check in release.health_checks or [])


def roll(
    session: Session,
    adapters: Adapters,
    settings: Settings,
    app: App,
    release: Release,
    log: Log,
    before_switch: Callable[[], None] | None = None,
) -> None:
    """Run the app's formation on ``release`` and retire everything else.

    New web instances must pass the release's app.json health checks, whatever made the roll:
    a deploy, a config change or a rollback. ``before_switch`` runs once they are live; if it
    raises (a cancelled deploy), they are undone.

    The app's deploy strategy says when the old instances stop: ``rolling`` (zero downtime)
    after the new ones serve, and a failure leaves the old ones serving; ``stop-first`` before
    the new ones start (see :func:`roll_stop_first`).
    """
    old = running_instances(session, app)
    wanted = [
        (process_type, index)
        for process_type, count in formation_plan(app, release, log)
        for index in range(1, count + 1)
    ]
    if app.deploy_strategy == STOP_FIRST and old:
        roll_stop_first(session, adapters, settings, app, release, wanted, old, log, before_switch)
        return
    new = start_checked(session, adapters, settings, app, release, wanted, log, before_switch)
    switch_and_drain(session, adapters, settings, app, release, new, old, log)


def start_checked(
    session: Session,
    adapters: Adapters,
    settings: Settings,
    app: App,
    release: Release,
    wanted: list[tuple[str, int]],
    log: Log,
    before_switch: Callable[[], None] | None = None,
) -> list[Instance]:
    """:func:`start_group` with the release's health checks, then ``before_switch``; if that
    raises, the new instances are undone."""
    new = start_group(session, adapters, settings, app, release, wanted, log, web_checks(release))
    if before_switch is not None:
        try:
            before_switch()
        except Exception:
            session.rollback()
            for instance in new:
                _undo(session, adapters, instance, log)
            raise
    return new


def roll_stop_first(
    session: Session,
    adapters: Adapters,
    settings: Settings,
    app: App,
    release: Release,
    wanted: list[tuple[str, int]],
    old: list[Instance],
    log: Log,
    before_switch: Callable[[], None] | None = None,
) -> None:
    """Stop every old instance, then start the new ones: never two releases at once (for
    single-writer software sharing a space), at the price of a gap in which the router answers
    503. If the new instances fail, the previous release is started again.

    The old rows stay (``draining``) until the end, so new rows never take their ids.
    """
    previous = app.current_release
    log("-----> Stopping the running instances first (deploy strategy stop-first)")
    stop_routing(session, adapters, old)
    gap = time.monotonic()
    try:
        stop_containers(session, adapters, settings, old, log)
        new = start_checked(session, adapters, settings, app, release, wanted, log, before_switch)
        switch_and_drain(session, adapters, settings, app, release, new, [], log)
    except Exception as exc:
        session.rollback()
        restarted = bring_back(session, adapters, settings, app, previous, log)
        retire_all(session, adapters, old)
        if not isinstance(exc, StartFailed):
            raise  # a cancelled deploy stays cancelled
        if restarted:
            raise StartFailed(f"{exc} The previous release v{restarted} runs again.") from exc
        raise StartFailed(
            f"{exc} The previous release could not be started again either: the app is down "
            "until a deploy or a rollback succeeds."
        ) from exc
    retire_all(session, adapters, old)
    log(f"       (stop-first: {time.monotonic() - gap:.1f} s without a running web instance)")


def stop_containers(
    session: Session, adapters: Adapters, settings: Settings, old: list[Instance], log: Log
) -> None:
    """Give ``old`` (no longer routed to) the drain grace, keep their logs, stop their
    containers; their rows and volumes stay until :func:`retire_all`."""
    time.sleep(settings.drain_grace)
    for instance in old:
        name = f"{instance.process_type}.{instance.index}"
        log(f"-----> Stopping {name} of the previous release")
        keep_logs(settings, adapters.volumes, instance)
        if instance.container_id:
            try:
                adapters.runtime.stop(instance.container_id)
            except Exception as exc:  # it may still run: starting a second writer is no option
                message = f"{name} of the previous release could not be stopped: {exc}"
                raise StartFailed(message) from exc


def retire_all(session: Session, adapters: Adapters, old: list[Instance]) -> None:
    for instance in old:
        try:
            session.refresh(instance)
            retire(session, adapters, instance)
        except Exception as exc:  # the reconciler removes what is left
            logger.warning("could not remove %s: %s", instance.container_name, exc)
            session.rollback()


def stop_routing(session: Session, adapters: Adapters, old: list[Instance]) -> None:
    """Take ``old`` out of the router before they stop: it answers 503, never a dead port."""
    for instance in old:
        instance.state = DRAINING
    session.flush()
    try:
        adapters.router.apply(routes_from_db(session))
    except Exception as exc:
        session.rollback()
        raise StartFailed(f"The router could not be updated: {exc}") from exc
    session.commit()


def bring_back(
    session: Session,
    adapters: Adapters,
    settings: Settings,
    app: App,
    previous: Release | None,
    log: Log,
) -> int | None:
    """After a failed stop-first roll: start ``previous`` again; its version, or None."""
    if previous is None:
        return None
    log(f"-----> Starting v{previous.version} again")
    wanted = [
        (process_type, index)
        for process_type, count in formation_plan(app, previous, log)
        for index in range(1, count + 1)
    ]
    try:
        back = start_checked(session, adapters, settings, app, previous, wanted, log)
        switch_and_drain(session, adapters, settings, app, previous, back, [], log)
    except Exception as exc:
        logger.warning("%s: v%s did not start again: %s", app.name, previous.version, exc)
        log(f"-----> v{previous.version} did not start again: {exc}")
        return None
    return previous.version


def scale_to_formation(
    session: Session, adapters: Adapters, settings: Settings, app: App, log: Log
) -> None:
    """Start or stop instances of the current release until the formation is met."""
    release = app.current_release
    if release is None:
        return
    running = running_instances(session, app)
    plan = dict(formation_plan(app, release, log))
    # A sleeping app keeps its formation for the next wake: its sleeping types stay as they are.
    asleep = asleep_types(app)
    missing, extra = [], []
    for process_type in (set(plan) | {i.process_type for i in running}) - asleep:
        have = sorted((i for i in running if i.process_type == process_type), key=lambda i: i.index)
        count = plan.get(process_type, 0)
        extra += have[count:]
        used = {i.index for i in have[:count]}
        free = (n for n in range(1, MAX_PER_TYPE * 2) if n not in used)
        missing += [(process_type, next(free)) for _ in range(count - len(have[:count]))]
    checks = web_checks(release)
    new = start_group(session, adapters, settings, app, release, sorted(missing), log, checks)
    switch_and_drain(session, adapters, settings, app, release, new, extra, log, wakes=False)


def sleep_types(app: App) -> set[str]:
    """The process types that sleep with the app: web, and those its sleep_types name."""
    return {"web"} | {name.strip() for name in app.sleep_types.split(",") if name.strip()}


def asleep_types(app: App) -> set[str]:
    """The process types that sleep now: none while the app is awake."""
    return sleep_types(app) if app.sleeping else set()


def scale(session: Session, app: App, formation: object) -> dict[str, int]:
    """Record a new formation (``{"web": 2}``) and have the worker converge to it."""
    from slipway.services import releases

    if not isinstance(formation, dict) or not formation:
        raise Invalid('Send the number of instances per process type, like {"web": 2}.')
    changes: dict[str, int] = {}
    for process_type, count in formation.items():
        if not isinstance(process_type, str) or not PROCESS_TYPE.match(process_type):
            raise Invalid(f"{process_type!r} is not a valid process type name.")
        if process_type == RELEASE_TYPE:
            raise Invalid("The release process runs once per release; it cannot be scaled.")
        if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= MAX_PER_TYPE:
            raise Invalid(
                f"The count of {process_type} must be a whole number from 0 to {MAX_PER_TYPE}."
            )
        changes[process_type] = count
    app.formation = {**app.formation, **changes}
    session.flush()
    if app.current_release_id is not None:
        releases.enqueue(session, releases.ROLL_TASK, app.id, app.current_release_id)
    return dict(app.formation)
