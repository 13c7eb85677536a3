"""``apps:fork``: a new app on another app's current release and settings, with its spaces forked.

The new app gets the source's config, formation, memory, health check, deploy strategy and sleep
settings (it starts awake, whether the source sleeps or not), and a release v1 of the source's
current release (its slug and assets shared on disk: they are never written again). Each space
attached to the source is forked as it is at that moment (constant time with the btrfs provider)
into ``<new>-<slot>`` and attached to the new app in the same slot for the same process types.
The new app then rolls out like a rollback does: the release phase, then its instances. A preview
or staging environment with production data, in seconds.

Nothing is left behind by a fork that fails half-way: the spaces it forked and the app go.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.config import Settings
from slipway.models import App, Release, Space, SpaceAttachment, User
from slipway.services import apps, releases, spaces
from slipway.services.errors import Conflict, Invalid

if TYPE_CHECKING:
    from slipway.adapters import Adapters

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ForkedSpace:
    slot: str
    source: str  # the source app's space
    space: str  # the new app's fork of it


@dataclass(frozen=True)
class Fork:
    app: App
    release: Release
    source: str
    source_version: int
    spaces: list[ForkedSpace]


def fork_space_name(app: str, slot: str) -> str:
    """The new app's space in ``slot``: ``<app>-<slot>`` (a slot's ``_`` becomes ``-``, since
    space names are DNS labels)."""
    return f"{app}-{slot.replace('_', '-')}"


def fork_app(
    session: Session,
    adapters: Adapters,
    settings: Settings,
    user: User,
    source: App,
    new_name: object,
) -> Fork:
    """Fork ``source`` (an app ``user`` may see) into a new app of ``user`` named ``new_name``.

    Refused with one sentence, before anything is made, when the source has no release, the
    name is invalid or taken, or one of the new spaces' names is. The roll is sent once the
    session commits.
    """
    name = apps.validate_name(new_name)
    current = source.current_release
    if current is None:
        raise Conflict(f"The app {source.name} has no release yet: deploy it before forking it.")
    if session.scalar(select(App.id).where(App.name == name)) is not None:
        raise Conflict(f"An app named {name!r} already exists.")
    attachments = spaces.attachments_of(session, source)
    _check_space_names(session, name, attachments)
    made = _Made()
    try:
        app = _new_app(session, adapters, settings, user, source, name)
        made.app_name = app.name
        release = _first_release(session, adapters, source, current, app)
        forked = []
        for attachment in attachments:
            space = spaces.fork_space(
                session,
                adapters,
                user,
                attachment.space,
                None,
                fork_space_name(name, attachment.slot),
            )
            made.spaces.append(space.name)
            spaces.attach_space(session, space, app, attachment.slot, attachment.process_types)
            forked.append(ForkedSpace(attachment.slot, attachment.space.name, space.name))
        releases.enqueue(session, releases.ROLL_TASK, app.id, release.id)
        session.flush()
    except Exception:
        _undo(session, adapters, settings, user, made)
        raise
    return Fork(app, release, source.name, current.version, forked)


def _check_space_names(session: Session, app: str, attachments: list[SpaceAttachment]) -> None:
    for attachment in attachments:
        wanted = fork_space_name(app, attachment.slot)
        try:
            spaces.check_space_name(wanted)
        except Invalid:
            raise Invalid(
                f"The fork of the space in slot {attachment.slot} would be named {wanted!r}, "
                "which is not a valid space name (longer than 63 characters): choose a shorter "
                "app name."
            ) from None
        if session.scalar(select(Space.id).where(Space.name == wanted)) is not None:
            raise Conflict(
                f"A space named {wanted!r} already exists, and the fork of slot "
                f"{attachment.slot} needs that name: choose another app name."
            )


def _new_app(
    session: Session, adapters: Adapters, settings: Settings, user: User, source: App, name: str
) -> App:
    app = apps.create_app(session, user, name, settings)
    app.config = dict(source.config)
    app.formation = dict(source.formation)
    app.memory = source.memory
    app.health_check_path = source.health_check_path
    app.deploy_strategy = source.deploy_strategy
    app.sleep_after = source.sleep_after
    app.sleep_types = source.sleep_types
    session.flush()
    return app


def _first_release(
    session: Session, adapters: Adapters, source: App, current: Release, app: App
) -> Release:
    try:
        slug = adapters.artifacts.copy(current.slug_path, app.name)
        assets = (
            adapters.artifacts.copy(current.assets_path, app.name) if current.assets_path else ""
        )
    except OSError as exc:
        raise Conflict(
            f"The slug of {source.name} v{current.version} is gone (pruned?): deploy "
            f"{source.name} again, then fork it."
        ) from exc
    return releases.create_release(
        session,
        app,
        slug_path=str(slug),
        assets_path=str(assets),
        stack=current.stack,
        node_version=current.node_version,
        config=dict(current.config),
        process_types=dict(current.process_types),
        health_checks=list(current.health_checks or []),
        description=f"Fork of {source.name} v{current.version}",
    )


@dataclass
class _Made:
    """What a fork made so far, by name (rows may have been committed by the space service)."""

    app_name: str | None = None
    spaces: list[str] = field(default_factory=list)


def _undo(
    session: Session, adapters: Adapters, settings: Settings, user: User, made: _Made
) -> None:
    """Remove the app and the spaces a failed fork made; what cannot go is logged."""
    session.rollback()
    try:
        if made.app_name is not None:
            app = session.scalar(select(App).where(App.name == made.app_name))
            if app is not None:
                apps.delete_app(session, app, adapters, settings)
            else:  # never committed, but its copied slug may exist
                adapters.artifacts.delete_app(made.app_name)
            session.commit()
        for name in made.spaces:
            space = session.scalar(select(Space).where(Space.name == name))
            if space is not None:
                session.refresh(space)
                spaces.delete_space(session, adapters, space, force=False)
                session.commit()
    except Exception as exc:
        session.rollback()
        logger.warning("could not undo the failed fork %s: %s", made.app_name, exc)
