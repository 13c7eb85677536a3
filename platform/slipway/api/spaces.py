"""``/spaces``: create, list, show, checkpoint, fork and delete spaces; attach them to apps.

Attaching and detaching take effect like a config change: an app with a release gets a new
release of the same slug and config, and its instances roll onto it with the new mounts. The
answer says which release that is (``release``: null when the app has none yet).
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request

from slipway.api.body import json_object
from slipway.api.context import adapters, current_user, db, settings
from slipway.models import Space, SpaceAttachment
from slipway.services import apps, spaces
from slipway.services.errors import Invalid


def _view(space: Space) -> dict[str, Any]:
    found = adapters()
    copies = found.space_provider.copies if found.space_provider is not None else False
    return spaces.space_view(space, spaces.space_usage(found, space), copies)


def list_spaces() -> Response:
    return jsonify([_view(space) for space in spaces.list_spaces(db(), current_user())])


def create_space() -> tuple[Response, int]:
    body = json_object()
    size = spaces.parse_space_size(body.get("size"), settings().space_default_size)
    name = spaces.check_space_name(body.get("name"))
    space = spaces.create_space(db(), adapters(), current_user(), name, size)
    return jsonify(_view(space)), 201


def show_space(name: str) -> Response:
    return jsonify(_view(spaces.get_space(db(), current_user(), name)))


def delete_space(name: str) -> Response:
    session = db()
    space = spaces.get_space(session, current_user(), name)
    detached = [_attachment(a) for a in space.attachments]
    force = request.args.get("force", "") in ("1", "true", "yes")
    spaces.delete_space(session, adapters(), space, force=force)
    return jsonify({"deleted": name, "detached": detached})


def create_checkpoint(name: str) -> tuple[Response, int]:
    session = db()
    space = spaces.get_space(session, current_user(), name)
    checkpoint = spaces.checkpoint_space(session, adapters(), space, json_object().get("name"))
    return jsonify({"name": checkpoint.name, "created_at": checkpoint.created_at.isoformat()}), 201


def fork_space() -> tuple[Response, int]:
    session = db()
    body = json_object()
    user = current_user()
    source_name, checkpoint = spaces.parse_fork_source(body.get("source"))
    new_name = spaces.check_space_name(body.get("name"))
    source = spaces.get_space(session, user, source_name)
    space = spaces.fork_space(session, adapters(), user, source, checkpoint, new_name)
    return jsonify(_view(space)), 201


def attach_space(name: str) -> tuple[Response, int]:
    session = db()
    body = json_object()
    user = current_user()
    space = spaces.get_space(session, user, name)
    app_name = body.get("app")
    if not isinstance(app_name, str):
        raise Invalid('Name the app to attach the space to, like {"app": "blog", "slot": "data"}.')
    app = apps.get_app(session, user, app_name)
    slot = spaces.check_slot(body.get("slot"))
    attachment = spaces.attach_space(session, space, app, slot, body.get("process_types"))
    release = spaces.roll_for_spaces(session, app, f"Attach space {space.name} in slot {slot}")
    answer = {**_attachment(attachment), "release": release.version if release else None}
    return jsonify(answer), 201


def detach_space(name: str, slot: str) -> Response:
    session = db()
    app = apps.get_app(session, current_user(), name)
    attached = {a.slot: a for a in spaces.attachments_of(session, app)}.get(slot)
    answer = _attachment(attached) if attached is not None else {}
    spaces.detach_space(session, app, slot)  # NotFound when the slot is empty
    release = spaces.roll_for_spaces(session, app, f"Detach space {answer['space']} from {slot}")
    return jsonify({**answer, "release": release.version if release else None})


def app_spaces(name: str) -> Response:
    session = db()
    app = apps.get_app(session, current_user(), name)
    found = adapters()
    answer = []
    for attachment in spaces.attachments_of(session, app):
        usage = spaces.space_usage(found, attachment.space)
        answer.append(
            {
                **_attachment(attachment),
                "size": attachment.space.size,
                "used": usage.used if usage is not None else None,
            }
        )
    return jsonify(answer)


def _attachment(attachment: SpaceAttachment) -> dict[str, Any]:
    return {
        "space": attachment.space.name,
        "app": attachment.app.name,
        "slot": attachment.slot,
        "process_types": list(attachment.process_types),
        "mount": f"{spaces.SPACES_ROOT}/{attachment.slot}/tree",
    }
