"""Spaces: named, size-capped persistent filesystems a user owns, checkpoints and forks of them,
and their attachment to apps' slots (mounted at ``/spaces/<slot>/tree``).

The data lives with the space provider (``adapters.spaces``) under the space's key; this module
keeps the rows, checks what users ask for, and turns the provider's failures into one sentence.
A space being made is committed as ``creating`` before the provider makes its data, so a crash
half-way leaves a row that says so, never data under a key that is handed out again.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from slipway.config import parse_size
from slipway.models import App, Event, Release, Space, SpaceAttachment, SpaceCheckpoint, User
from slipway.models.event import SPACE_CHECKPOINTED, SPACE_CREATED, SPACE_FORKED, SPACE_NEARLY_FULL
from slipway.models.space import CREATING, READY
from slipway.runtime.base import Mount
from slipway.services import events
from slipway.services.apps import NAME_RE
from slipway.services.archives import PROCESS_TYPE, RELEASE_TYPE
from slipway.services.errors import Conflict, Invalid, NotFound, Unavailable
from slipway.volumes.spaces import MIN_SIZE, SpaceError, SpaceUsage, check_checkpoint

if TYPE_CHECKING:
    from slipway.adapters import Adapters

SPACES_ROOT = "/spaces"
SLOT_RE = re.compile(r"^[a-z][a-z0-9_-]{0,30}$")
NAME_RULE = (
    "A space name is a DNS label: 1 to 63 lowercase letters, digits or dashes, "
    "starting with a letter and not ending with a dash."
)
NEARLY_FULL = 0.90  # share of the size at which the nearly-full event fires
REARM_BELOW = 0.85  # and below which it may fire again


class SpaceFailed(Unavailable):
    """The space provider could not do what was asked; the message says why."""


def _why(exc: SpaceError) -> str:
    """The provider's reason, to end a sentence of ours."""
    return str(exc).rstrip(". ")


# ----------------------------------------------------------------------------- input


def check_space_name(name: object) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        shown = name if isinstance(name, str) else type(name).__name__
        raise Invalid(f"{shown!r} is not a valid space name. {NAME_RULE}")
    return name


def check_slot(slot: object) -> str:
    if not isinstance(slot, str) or not SLOT_RE.match(slot):
        shown = slot if isinstance(slot, str) else type(slot).__name__
        raise Invalid(
            f"{shown!r} is not a valid slot name: use 1 to 31 lowercase letters, digits, "
            "'_' or '-', starting with a letter."
        )
    return slot


def parse_space_size(value: object, default: int) -> int:
    """Bytes from ``"1G"``, ``"512M"`` or a number of bytes; ``None`` or ``""``: ``default``."""
    if value is None or value == "":
        return default
    try:
        size = parse_size(value) if isinstance(value, str) else value
    except ValueError:
        size = None
    if not isinstance(size, int) or isinstance(size, bool) or size < MIN_SIZE:
        raise Invalid(
            f"A space's size is at least {MIN_SIZE // 1024**2}M, such as 512M or 1G, not {value!r}."
        )
    return size


def _checkpoint_name(name: object) -> str:
    if not isinstance(name, str):
        raise Invalid("Name the checkpoint, like 'before-migration'.")
    try:
        return check_checkpoint(name)
    except SpaceError as exc:
        raise Invalid(f"{str(exc)[0].upper()}{str(exc)[1:]}.") from None


def parse_fork_source(text: object) -> tuple[str, str | None]:
    """``"SOURCE"`` or ``"SOURCE@CHECKPOINT"`` as (source, checkpoint or None)."""
    if not isinstance(text, str) or not text:
        raise Invalid("Name the space to fork, as SOURCE or SOURCE@CHECKPOINT.")
    source, at, checkpoint = text.partition("@")
    check_space_name(source)
    return source, _checkpoint_name(checkpoint) if at else None


# ----------------------------------------------------------------------------- finding


def get_space(session: Session, user: User, name: object) -> Space:
    """The space, if the user owns it or is an admin; another user's is as absent as none."""
    space = (
        session.scalar(select(Space).where(Space.name == name)) if isinstance(name, str) else None
    )
    if space is None or not (user.is_admin or space.owner_id == user.id):
        raise NotFound(f"There is no space named {name!r}.")
    return space


def list_spaces(session: Session, user: User) -> list[Space]:
    query = (
        select(Space)
        .options(
            selectinload(Space.owner),
            selectinload(Space.checkpoints),
            selectinload(Space.attachments).selectinload(SpaceAttachment.app),
        )
        .order_by(Space.name)
    )
    if not user.is_admin:
        query = query.where(Space.owner_id == user.id)
    return list(session.scalars(query))


def space_usage(adapters: Adapters, space: Space) -> SpaceUsage | None:
    """Bytes used and the cap; None while the space is being made or its data is unavailable."""
    if space.state != READY or adapters.space_provider is None:
        return None
    try:
        return adapters.space_provider.usage(space.key)
    except (SpaceError, OSError):  # not mounted, or its image is gone: nothing to measure
        return None


def attachments_of(session: Session, app: App) -> list[SpaceAttachment]:
    query = (
        select(SpaceAttachment)
        .options(selectinload(SpaceAttachment.space))
        .where(SpaceAttachment.app_id == app.id)
        .order_by(SpaceAttachment.slot)
    )
    return list(session.scalars(query))


def space_view(space: Space, usage: SpaceUsage | None, copies: bool) -> dict[str, Any]:
    """The space as the API and the dashboard show it."""
    return {
        "name": space.name,
        "owner": space.owner.username,
        "size": space.size,
        "used": usage.used if usage is not None else None,
        "state": space.state,
        "origin": space.origin,
        "nearly_full": space.nearly_full,
        "checkpoints": [
            {"name": c.name, "created_at": c.created_at.isoformat()} for c in space.checkpoints
        ],
        "attachments": [
            {"app": a.app.name, "slot": a.slot, "process_types": list(a.process_types)}
            for a in sorted(space.attachments, key=lambda a: (a.app.name, a.slot))
        ],
        "copies": copies,  # the provider copies the data to checkpoint and fork
        "created_at": space.created_at.isoformat(),
    }


# ----------------------------------------------------------------------------- making


def create_space(
    session: Session, adapters: Adapters, owner: User, name: str, size: int, origin: str = ""
) -> Space:
    """A new, empty space; :class:`Conflict` if the name is taken, :class:`SpaceFailed` (and no
    row) if the provider cannot make it."""
    space = _claim(session, owner, name, size, origin)
    _make(session, space, lambda: adapters.spaces.create(space.key, size))
    return space  # attached to no app yet: its created event waits for the first attachment


def fork_space(
    session: Session,
    adapters: Adapters,
    owner: User,
    source: Space,
    checkpoint: str | None,
    new_name: str,
) -> Space:
    """A new writable space from ``source`` now, or from its ``checkpoint``."""
    check_space_name(new_name)
    if source.state != READY:
        raise Conflict(f"The space {source.name} is still being made; fork it in a moment.")
    if checkpoint is not None and not any(c.name == checkpoint for c in source.checkpoints):
        raise NotFound(f"The space {source.name} has no checkpoint named {checkpoint!r}.")
    label = source.name if checkpoint is None else f"{source.name}@{checkpoint}"
    source_key = source.key
    space = _claim(session, owner, new_name, source.size, f"fork of {label}")
    _make(session, space, lambda: adapters.spaces.fork(source_key, checkpoint, space.key))
    data = {"source": source.name, "checkpoint": checkpoint, "fork": space.name}
    record_space_event(
        session, space, SPACE_FORKED, f"Space {space.name} forked from {label}", data
    )
    record_space_event(
        session, source, SPACE_FORKED, f"Space {label} forked into {space.name}", data
    )
    return space


def _claim(session: Session, owner: User, name: str, size: int, origin: str) -> Space:
    """The space's row, committed as ``creating``: its name and key are taken from now on."""
    checked = check_space_name(name)
    taken = f"A space named {checked!r} already exists."
    if session.scalar(select(Space.id).where(Space.name == checked)) is not None:
        raise Conflict(taken)
    space = Space(name=checked, owner=owner, size=size, state=CREATING, origin=origin)
    try:
        session.add(space)
        session.commit()
    except IntegrityError as exc:  # made by another request between the check and here
        session.rollback()
        raise Conflict(taken) from exc
    return space


def _make(session: Session, space: Space, make: Callable[[], object]) -> None:
    """Run the provider's ``make``; on failure the row goes too, and the reason is raised."""
    try:
        make()
    except SpaceError as exc:
        name = space.name
        session.delete(space)
        session.commit()
        raise SpaceFailed(f"The space {name} could not be made: {_why(exc)}.") from exc
    space.state = READY
    session.commit()


# ----------------------------------------------------------------------------- checkpoints


def checkpoint_space(
    session: Session, adapters: Adapters, space: Space, name: object
) -> SpaceCheckpoint:
    """A named, read-only point in time of the space; names are unique per space."""
    checked = _checkpoint_name(name)
    if space.state != READY:
        raise Conflict(f"The space {space.name} is still being made; checkpoint it in a moment.")
    if any(c.name == checked for c in space.checkpoints):
        raise Conflict(f"The space {space.name} already has a checkpoint named {checked!r}.")
    checkpoint = SpaceCheckpoint(space=space, name=checked)
    session.add(checkpoint)
    session.flush()
    try:
        adapters.spaces.checkpoint(space.key, checked)
    except SpaceError as exc:
        raise SpaceFailed(
            f"The space {space.name} could not be checkpointed: {_why(exc)}."
        ) from exc
    record_space_event(
        session,
        space,
        SPACE_CHECKPOINTED,
        f"Space {space.name} checkpointed as {checked}",
        {"checkpoint": checked},
    )
    return checkpoint


# ----------------------------------------------------------------------------- deleting


def delete_space(session: Session, adapters: Adapters, space: Space, force: bool = False) -> None:
    """Delete the space, its checkpoints and its data; refused while attached unless ``force``,
    which detaches it first (each app it leaves rolls onto a new release without it)."""
    attachments = sorted(space.attachments, key=lambda a: (a.app.name, a.slot))
    if attachments and not force:
        first = attachments[0]
        raise Conflict(
            f"The space {space.name} is attached to app {first.app.name} in slot {first.slot}; "
            "detach it first or use --force."
        )
    for attachment in attachments:
        detach_space(session, attachment.app, attachment.slot)
        roll_for_spaces(session, attachment.app, f"Detach space {space.name} (deleted)")
    session.expire(space, ["attachments"])  # those rows are gone already
    try:
        adapters.spaces.destroy(space.key)
    except SpaceError as exc:
        raise SpaceFailed(f"The space {space.name} could not be deleted: {_why(exc)}.") from exc
    session.delete(space)
    session.flush()


# ----------------------------------------------------------------------------- attachments


def attach_space(
    session: Session,
    space: Space,
    app: App,
    slot: str,
    process_types: list[str] | None = None,
) -> SpaceAttachment:
    """Mount ``space`` in the app's ``slot`` for ``process_types`` (empty or None: every type).

    Only the row: running instances get it when the app rolls (:func:`roll_for_spaces`).
    """
    checked = check_slot(slot)
    types = _process_types(process_types)
    if space.owner_id != app.owner_id:
        raise Conflict(
            f"The space {space.name} and the app {app.name} belong to different users; "
            "a space can only be attached to its owner's apps."
        )
    if space.state != READY:
        raise Conflict(f"The space {space.name} is still being made; attach it in a moment.")
    taken = session.scalar(
        select(SpaceAttachment).where(
            SpaceAttachment.app_id == app.id, SpaceAttachment.slot == checked
        )
    )
    if taken is not None:
        raise Conflict(
            f"The app {app.name} already has the space {taken.space.name} in slot {checked}; "
            "detach it first."
        )
    attachment = SpaceAttachment(space=space, app=app, slot=checked, process_types=types)
    session.add(attachment)
    session.flush()
    _announce_creation(session, space, app)
    return attachment


def _announce_creation(session: Session, space: Space, app: App) -> None:
    """The created event of a space goes to the first app it is attached to: a space attached
    to no app records no events, so this is the first moment a webhook can hear of it."""
    told = select(Event.id).where(Event.space_id == space.id, Event.type == SPACE_CREATED)
    if session.scalar(told.limit(1)) is None:
        message = f"Space {space.name} created" + (f" ({space.origin})" if space.origin else "")
        events.record_event(
            session, app, SPACE_CREATED, message, {"space": space.name}, space=space
        )


def _process_types(value: object) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Invalid("process_types is a list of process type names, like ['web', 'worker'].")
    for item in value:
        if not isinstance(item, str) or not PROCESS_TYPE.match(item) or item == RELEASE_TYPE:
            raise Invalid(f"{item!r} is not a process type name.")
    return sorted(set(value))


def detach_space(session: Session, app: App, slot: str) -> None:
    """Unmount whatever space is in the app's ``slot`` (the row; the next roll applies it)."""
    checked = check_slot(slot)
    attachment = session.scalar(
        select(SpaceAttachment).where(
            SpaceAttachment.app_id == app.id, SpaceAttachment.slot == checked
        )
    )
    if attachment is None:
        raise NotFound(f"The app {app.name} has no space in slot {checked}.")
    session.delete(attachment)
    session.flush()


def roll_for_spaces(session: Session, app: App, description: str) -> Release | None:
    """Make attachment changes reach running instances, the way a config change does: a new
    release of the same slug and config, rolled onto once the session commits.

    None when the app has no release yet (its first deploy mounts what is attached then).
    """
    from slipway.services import releases

    current = app.current_release
    if current is None:
        return None
    release = releases.create_release(
        session,
        app,
        slug_path=current.slug_path,
        stack=current.stack,
        node_version=current.node_version,
        config=dict(current.config),
        process_types=current.process_types,
        health_checks=current.health_checks,
        description=description,
    )
    release.assets_path = current.assets_path
    session.flush()
    releases.enqueue(session, releases.ROLL_TASK, app.id, release.id)
    return release


def space_mounts(
    session: Session, adapters: Adapters, app: App, process_type: str | None
) -> list[Mount]:
    """The app's spaces an instance of ``process_type`` mounts (None: the release phase and
    one-off runs mount every one). :class:`SpaceFailed` when one is not mounted on the host:
    the instance must not start without its data."""
    mounts = []
    for attachment in attachments_of(session, app):
        if process_type is not None and not attachment.mounted_in(process_type):
            continue
        space = attachment.space
        try:
            tree = adapters.spaces.tree(space.key)
        except SpaceError as exc:
            raise SpaceFailed(
                f"The space {space.name} is not available for slot {attachment.slot}: {_why(exc)}."
            ) from exc
        mounts.append(Mount(tree, f"{SPACES_ROOT}/{attachment.slot}/tree"))
    return mounts


# ----------------------------------------------------------------------------- events


def record_space_event(
    session: Session, space: Space, type: str, message: str, data: dict[str, Any] | None = None
) -> None:
    """One event per app the space is attached to (their webhooks hear of it); none if it is
    attached to no app."""
    attached = select(SpaceAttachment.app_id).where(SpaceAttachment.space_id == space.id)
    for app in session.scalars(select(App).where(App.id.in_(attached)).order_by(App.id)):
        events.record_event(
            session, app, type, message, {"space": space.name, **(data or {})}, space=space
        )


def check_nearly_full(session: Session, adapters: Adapters) -> list[str]:
    """Record a nearly-full event for each space that reached 90% of its size since the last
    one, and re-arm those back under 85%; the names of the spaces that fired."""
    if adapters.space_provider is None:
        return []
    fired = []
    for space in session.scalars(select(Space).where(Space.state == READY).order_by(Space.id)):
        usage = space_usage(adapters, space)
        if usage is None or usage.size <= 0:
            continue
        share = usage.used / usage.size
        if share >= NEARLY_FULL and not space.nearly_full:
            space.nearly_full = True
            record_space_event(
                session,
                space,
                SPACE_NEARLY_FULL,
                f"Space {space.name} is {share:.0%} full ({usage.used} of {usage.size} bytes)",
                {"used": usage.used, "size": usage.size},
            )
            fired.append(space.name)
        elif share < REARM_BELOW and space.nearly_full:
            space.nearly_full = False
    session.flush()
    return fired
