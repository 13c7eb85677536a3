"""Apps: create, find (a user sees only their own; an admin sees all), describe, delete."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from slipway.config import Settings, format_duration, parse_duration, parse_size
from slipway.models import App, Deploy, Instance, Space, User
from slipway.models import deploy as deploy_states
from slipway.models import instance as instance_states
from slipway.models.app import DEPLOY_STRATEGIES, NEVER_SLEEPS
from slipway.runtime.base import LABEL_APP, ContainerError, Limits
from slipway.services import app_files, logs
from slipway.services.archives import PROCESS_TYPE, RELEASE_TYPE
from slipway.services.errors import Conflict, Invalid, NotFound, SlipwayError
from slipway.services.routing import routes_from_db

if TYPE_CHECKING:
    from slipway.adapters import Adapters

logger = logging.getLogger(__name__)

# A DNS label (RFC 1123), starting with a letter so it never looks like a number or an address.
NAME_RE = re.compile(r"^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$")
DESTROY_WAIT = 60.0  # seconds a destroy waits for the app's running deploy to stop
LOCK_POLL = 1.0
NAME_RULE = (
    "An app name is a DNS label: 1 to 63 lowercase letters, digits or dashes, "
    "starting with a letter and not ending with a dash."
)


def validate_name(name: object) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        shown = name if isinstance(name, str) else type(name).__name__
        raise Invalid(f"{shown!r} is not a valid app name. {NAME_RULE}")
    return name


def create_app(session: Session, owner: User, name: object, settings: Settings) -> App:
    """A new app owned by ``owner``; :class:`Invalid` for a bad name, :class:`Conflict` if taken."""
    checked = validate_name(name)
    if session.scalar(select(App.id).where(App.name == checked)) is not None:
        raise Conflict(f"An app named {checked!r} already exists.")
    app = App(name=checked, owner=owner, memory=settings.default_memory)
    try:
        session.add(app)
        session.flush()
    except IntegrityError as exc:  # created by another request between the check and here
        raise Conflict(f"An app named {checked!r} already exists.") from exc
    # A name freed by an earlier app starts empty, even if its removal was cut short.
    app_files.remove_app_files(settings, checked)
    return app


def list_apps(session: Session, user: User) -> list[App]:
    # The list view shows every app's owner and release: load them in two queries, not 2 × N.
    query = select(App).options(selectinload(App.owner), selectinload(App.current_release))
    query = query.order_by(App.name)
    if not user.is_admin:
        query = query.where(App.owner_id == user.id)
    return list(session.scalars(query))


def get_app(session: Session, user: User, name: str) -> App:
    """The app, if the user may see it; another user's app is as absent as a missing one."""
    app = session.scalar(select(App).where(App.name == name))
    if app is None or not (user.is_admin or app.owner_id == user.id):
        raise NotFound(f"There is no app named {name!r}.")
    return app


def app_url(settings: Settings, name: str) -> str:
    port = settings.router_bind.rpartition(":")[2]
    suffix = "" if port in ("", "80") else f":{port}"
    return f"http://{name}.{settings.domain}{suffix}"


def active_instances(session: Session, app: App) -> list[Instance]:
    query = (
        select(Instance)
        .where(Instance.app_id == app.id, Instance.state != instance_states.STOPPED)
        .order_by(Instance.process_type, Instance.index, Instance.id)
    )
    return list(session.scalars(query))


def running_deploy(session: Session, app: App) -> Deploy | None:
    query = select(Deploy).where(
        Deploy.app_id == app.id, Deploy.state.not_in(deploy_states.TERMINAL_STATES)
    )
    return session.scalars(query.order_by(Deploy.id.desc())).first()


def app_state(app: App, instances: list[Instance], deploying: bool) -> str:
    """One word: new, deploying, sleeping, running, stopped, crashed or starting.

    A deploy of a sleeping app wakes it, so "deploying" wins over "sleeping".
    """
    if deploying:
        return "deploying"
    if app.current_release_id is None:
        return "new"
    if app.sleeping:
        return "sleeping"
    if not any(app.formation.values()):
        return "stopped"
    states = {instance.state for instance in instances}
    if instance_states.LIVE in states:
        return "running"
    if states & {instance_states.CRASHED, instance_states.FAILED}:
        return "crashed"
    return "starting"


def instance_view(instance: Instance) -> dict[str, Any]:
    return {
        "process_type": instance.process_type,
        "index": instance.index,
        "state": instance.state,
        "port": instance.host_port,
        "container": instance.container_name,
        "release": instance.release.version,
    }


def release_summary(app: App) -> dict[str, Any] | None:
    release = app.current_release
    if release is None:
        return None
    return {
        "version": release.version,
        "stack": release.stack,
        "description": release.description,
        "created_at": release.created_at.isoformat(),
    }


def app_view(session: Session, app: App, settings: Settings) -> dict[str, Any]:
    """The app as the API and the dashboard show it."""
    instances = active_instances(session, app)
    return _view(app, instances, running_deploy(session, app) is not None, settings)


def app_views(session: Session, apps: list[App], settings: Settings) -> list[dict[str, Any]]:
    """Many apps as :func:`app_view` shows them, with one query for all their instances and
    one for their running deploys (a list of 100 apps stays a handful of queries)."""
    ids = [app.id for app in apps]
    instances: dict[int, list[Instance]] = {app_id: [] for app_id in ids}
    query = (
        select(Instance)
        .options(selectinload(Instance.release))
        .where(Instance.app_id.in_(ids), Instance.state != instance_states.STOPPED)
        .order_by(Instance.process_type, Instance.index, Instance.id)
    )
    for instance in session.scalars(query):
        instances[instance.app_id].append(instance)
    deploying = set(
        session.scalars(
            select(Deploy.app_id).where(
                Deploy.app_id.in_(ids), Deploy.state.not_in(deploy_states.TERMINAL_STATES)
            )
        )
    )
    return [_view(app, instances[app.id], app.id in deploying, settings) for app in apps]


def _view(
    app: App, instances: list[Instance], deploying: bool, settings: Settings
) -> dict[str, Any]:
    return {
        "name": app.name,
        "owner": app.owner.username,
        "url": app_url(settings, app.name),
        "state": app_state(app, instances, deploying),
        "release": release_summary(app),
        "instances": [instance_view(instance) for instance in instances],
        "formation": dict(app.formation),
        "memory": app.memory,
        "health_check_path": app.health_check_path,
        "deploy_branch": app.deploy_branch,
        "deploy_strategy": app.deploy_strategy,
        **sleep_view(app, settings),
        "created_at": app.created_at.isoformat(),
    }


def sleep_after_of(app: App, settings: Settings) -> int:
    """Seconds without a request before the app sleeps (0: never): its own, else the platform's."""
    return settings.sleep_after if app.sleep_after is None else app.sleep_after


def sleep_types_of(app: App) -> list[str]:
    return [kind for kind in app.sleep_types.split(",") if kind]


def sleep_view(app: App, settings: Settings) -> dict[str, Any]:
    return {
        "sleep_after": sleep_after_of(app, settings),
        "sleep_after_source": "platform" if app.sleep_after is None else "app",
        "sleep_types": sleep_types_of(app),
        "sleeping": app.sleeping,
    }


@dataclass(frozen=True)
class Destroyed:
    """What became of the spaces attached to a destroyed app (by name)."""

    spaces_kept: list[str] = field(default_factory=list)
    spaces_deleted: list[str] = field(default_factory=list)


def delete_app(
    session: Session,
    app: App,
    adapters: Adapters,
    settings: Settings,
    delete_spaces: bool = False,
) -> Destroyed:
    """Remove the app and everything that belongs to it.

    Its containers (builds and one-off runs included) are stopped, its running deploy is
    waited for (stopping its build makes it end), then its instances' volumes, route, sources,
    slugs, unpacked assets, build cache, git repository and logs go; releases, deploys, events,
    webhooks and space attachments go with its row. A new app of the same name starts empty.

    Its spaces stay (they are their owner's, not the app's) unless ``delete_spaces``: then
    they are deleted too, refused before anything goes if one is attached to another app.
    """
    from slipway.services.builds import build_volume_names
    from slipway.services.deploys import log_dir

    attached = _attached_spaces(session, app, delete_spaces)
    with _no_deploy_running(app, adapters, settings):
        for instance in app.instances:
            adapters.volumes.destroy(instance.volume_name)
        for deploy in app.deploys:
            if deploy.state not in deploy_states.TERMINAL_STATES:  # its worker died mid-build
                for name in build_volume_names(deploy.id):
                    adapters.volumes.destroy(name)
        deploy_logs = [Path(d.log_path) for d in app.deploys if d.log_path]
        log_folder = logs.app_key(app)
        # Deleted while the lock is held: a queued deploy that takes the lock next finds its
        # row gone (or waits for this transaction and then finds it gone), never builds.
        session.delete(app)
        session.flush()
    adapters.router.apply(routes_from_db(session))
    adapters.artifacts.delete_app(app.name)
    app_files.remove_app_files(settings, app.name, log_folder)
    app_files.remove_files(deploy_logs, log_dir(settings))
    if not delete_spaces:
        return Destroyed(spaces_kept=[space.name for space in attached])
    return _delete_spaces(session, adapters, app.name, attached)


def _attached_spaces(session: Session, app: App, deleting: bool) -> list[Space]:
    """The spaces attached to the app; when they are to be deleted, Conflict if one is also
    another app's."""
    from slipway.services.spaces import attachments_of

    found = {a.space.id: a.space for a in attachments_of(session, app)}
    attached = sorted(found.values(), key=lambda space: space.name)
    if deleting:
        for space in attached:
            others = sorted(a.app.name for a in space.attachments if a.app_id != app.id)
            if others:
                raise Conflict(
                    f"The space {space.name} is also attached to the app {others[0]}: detach it "
                    f"there first, or destroy {app.name} without deleting its spaces."
                )
    return attached


def _delete_spaces(
    session: Session, adapters: Adapters, app_name: str, attached: list[Space]
) -> Destroyed:
    """Delete the spaces a destroyed app had; one that cannot go is kept (and logged)."""
    from slipway.services.spaces import delete_space

    kept, deleted = [], []
    for space in attached:
        session.refresh(space)  # its attachment went with the app's row
        try:
            delete_space(session, adapters, space)
        except SlipwayError as exc:
            logger.warning("%s: the space %s was kept: %s", app_name, space.name, exc)
            kept.append(space.name)
            continue
        deleted.append(space.name)
    return Destroyed(spaces_kept=kept, spaces_deleted=deleted)


@contextmanager
def _no_deploy_running(app: App, adapters: Adapters, settings: Settings) -> Iterator[None]:
    """Stop the app's containers until its deploy lock is free, and hold the lock meanwhile.

    A deploy whose build or instances are stopped under it fails and lets go of the lock.
    Past the deadline, Conflict.
    """
    from slipway.services.deploys import app_lock
    from slipway.services.instances import platform_labels

    # Only this platform's containers: another platform on the same engine may have an app
    # of the same name.
    labels = {**platform_labels(settings), LABEL_APP: app.name}
    deadline = time.monotonic() + DESTROY_WAIT
    while True:
        for container in adapters.runtime.list(labels=labels):
            try:
                adapters.runtime.stop(container.container_id)
            except ContainerError:  # its worker is removing it already; the lock tells
                pass
        held = ExitStack()
        try:
            held.enter_context(app_lock(settings, app.id, LOCK_POLL))
        except Conflict:
            if time.monotonic() >= deadline:
                raise Conflict(
                    f"A deploy of {app.name} is still running; destroy the app again in a minute."
                ) from None
            continue
        with held:
            yield
        return


# ----------------------------------------------------------------------------- app settings

MIN_MEMORY = 32 * 1024**2
BRANCH_RE = re.compile(r"^(?!/|.*//|.*\.\.|.*/$|.*\.lock$)[A-Za-z0-9._/-]{1,100}$")
HEALTH_PATH_RE = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]{0,200}$")
SETTINGS = (
    "memory",
    "health_check_path",
    "deploy_branch",
    "deploy_strategy",
    "sleep_after",
    "sleep_types",
)
# Shorter would put an app to sleep between the requests of one page load.
MIN_SLEEP_AFTER = 10
SLEEP_TYPES_LENGTH = 255  # the column's size


def update_app(
    session: Session, app: App, changes: dict[str, Any], adapters: Adapters, settings: Settings
) -> App:
    """Change the app's own settings; a new memory limit applies to its running instances at once.

    ``memory`` (bytes, or a size such as ``"256M"``), ``health_check_path`` (``null`` for none:
    an instance is live once its port accepts connections), ``deploy_branch`` (the branch a
    `git push` deploys), ``deploy_strategy`` (``rolling`` or ``stop-first``; the next roll
    uses it), ``sleep_after`` (a duration such as ``"15m"``, whole seconds, ``"never"``, or
    ``null``/``"default"`` for the platform's) and ``sleep_types`` (the non-web process types
    that sleep with web: a list, or a comma separated string; empty for none). A sleeping app
    stays asleep whatever these become: its next request wakes it.
    """
    unknown = sorted(set(changes) - set(SETTINGS))
    if unknown:
        raise Invalid(f"Unknown app setting {unknown[0]!r}: use {', '.join(SETTINGS)}.")
    if "memory" in changes:
        app.memory = _memory(changes["memory"])
    if "health_check_path" in changes:
        path = changes["health_check_path"]
        if path is not None and not (isinstance(path, str) and HEALTH_PATH_RE.match(path)):
            raise Invalid("health_check_path is a URL path starting with '/', or null for none.")
        app.health_check_path = path
    if "deploy_branch" in changes:
        branch = changes["deploy_branch"]
        if not (isinstance(branch, str) and BRANCH_RE.match(branch)):
            raise Invalid(f"{branch!r} is not a valid git branch name.")
        app.deploy_branch = branch
    if "deploy_strategy" in changes:
        app.deploy_strategy = check_deploy_strategy(changes["deploy_strategy"])
    if "sleep_after" in changes:
        app.sleep_after = check_sleep_after(changes["sleep_after"])
    if "sleep_types" in changes:
        app.sleep_types = ",".join(check_sleep_types(changes["sleep_types"]))
    session.flush()
    if "memory" in changes:
        limits = Limits(memory=app.memory, pids=settings.instance_pids)
        for instance in active_instances(session, app):
            if instance.container_id:
                adapters.runtime.update_limits(instance.container_id, limits)
    return app


def check_deploy_strategy(value: object) -> str:
    if value not in DEPLOY_STRATEGIES:
        raise Invalid(f"deploy_strategy is {' or '.join(DEPLOY_STRATEGIES)}, not {value!r}.")
    return str(value)


def check_sleep_after(value: object) -> int | None:
    """The app's own sleep_after in seconds (0: never), or None to follow the platform's."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "default"):
        return None
    seconds: object = value
    if isinstance(value, str):
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise Invalid(f"sleep_after: {exc}.") from exc
    if not isinstance(seconds, int) or isinstance(seconds, bool) or seconds < 0:
        raise Invalid(
            "sleep_after is a duration such as 15m, 90s or 2h, a number of seconds, "
            "never, or default for the platform's."
        )
    if seconds != NEVER_SLEEPS and seconds < MIN_SLEEP_AFTER:
        raise Invalid(
            f"sleep_after is at least {format_duration(MIN_SLEEP_AFTER)} (or never), "
            f"not {format_duration(seconds)}."
        )
    return seconds


def check_sleep_types(value: object) -> list[str]:
    """The non-web process types that sleep with web, from a list or ``"worker,clock"``."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list):
        raise Invalid('sleep_types is a list of process types, such as ["worker"].')
    kinds: list[str] = []
    for kind in value:
        if not isinstance(kind, str) or not PROCESS_TYPE.match(kind) or kind == RELEASE_TYPE:
            raise Invalid(f"{kind!r} is not a process type (such as worker or clock).")
        if kind == "web":
            raise Invalid("web always sleeps: sleep_types lists only the other process types.")
        if kind not in kinds:
            kinds.append(kind)
    if len(",".join(kinds)) > SLEEP_TYPES_LENGTH:
        raise Invalid(f"sleep_types is at most {SLEEP_TYPES_LENGTH} characters, commas included.")
    return kinds


def _memory(value: object) -> int:
    try:
        size = parse_size(value) if isinstance(value, str) else value
    except ValueError as exc:
        raise Invalid(f"memory: {exc}.") from exc
    if not isinstance(size, int) or isinstance(size, bool) or size < MIN_MEMORY:
        raise Invalid("memory is a size of at least 32M, such as 256M or 1G.")
    return size
