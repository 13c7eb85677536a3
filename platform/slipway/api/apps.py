"""``/apps``: create, list, show, fork and delete apps; put one to sleep or wake it."""

from __future__ import annotations

from flask import Response, jsonify, request

from slipway.api.body import json_object
from slipway.api.context import adapters, current_user, db, settings
from slipway.api.errors import error_response
from slipway.services import app_fork, apps


def list_apps() -> Response:
    session = db()
    found = apps.list_apps(session, current_user())
    return jsonify(apps.app_views(session, found, settings()))


def create_app() -> tuple[Response, int]:
    session = db()
    app = apps.create_app(session, current_user(), json_object().get("name"), settings())
    session.flush()
    return jsonify(apps.app_view(session, app, settings())), 201


def show_app(name: str) -> Response:
    session = db()
    app = apps.get_app(session, current_user(), name)
    return jsonify(apps.app_view(session, app, settings()))


def delete_app(name: str) -> tuple[str | Response, int]:
    """``?delete_spaces=1`` deletes the app's spaces too; they are kept otherwise. 204 for an
    app without spaces, else 200 and what became of them."""
    session = db()
    app = apps.get_app(session, current_user(), name)
    delete_spaces = request.args.get("delete_spaces", "") in ("1", "true", "yes")
    done = apps.delete_app(session, app, adapters(), settings(), delete_spaces=delete_spaces)
    if not (done.spaces_kept or done.spaces_deleted):
        return "", 204
    body = {"name": name, "spaces_kept": done.spaces_kept, "spaces_deleted": done.spaces_deleted}
    return jsonify(body), 200


def fork_app(name: str) -> tuple[Response, int]:
    """``{"name": NEW}``: a new app of the caller on this app's release, with its spaces forked."""
    session = db()
    user = current_user()
    source = apps.get_app(session, user, name)
    fork = app_fork.fork_app(
        session, adapters(), settings(), user, source, json_object().get("name")
    )
    view = apps.app_view(session, fork.app, settings())
    view["forked_from"] = {"app": fork.source, "version": fork.source_version}
    view["forked_spaces"] = [
        {"slot": s.slot, "source": s.source, "space": s.space} for s in fork.spaces
    ]
    view["forked_release"] = fork.release.version
    return jsonify(view), 201


def update_app(name: str) -> Response:
    session = db()
    app = apps.get_app(session, current_user(), name)
    apps.update_app(session, app, json_object(), adapters(), settings())
    return jsonify(apps.app_view(session, app, settings()))


def sleep_app(name: str) -> Response:
    """Put the app to sleep now (its web instances stop; its next request wakes it). 409 while
    a deploy of it runs, 422 when it cannot sleep; an app asleep already answers the same."""
    from slipway.services import sleep  # the sleep domain loads the router and instances

    session = db()
    app = apps.get_app(session, current_user(), name)
    sleep.put_to_sleep(session, adapters(), settings(), app, "requested")
    session.refresh(app)
    return jsonify(apps.app_view(session, app, settings()))


def wake_app(name: str) -> Response | tuple[Response, int]:
    """Wake the app now, as its next request would: 200 once its web instances are live, 503
    with the reason when they cannot start."""
    from slipway.services import sleep

    session = db()
    app = apps.get_app(session, current_user(), name)
    try:
        sleep.wake(session, adapters(), settings(), app.name)
    except sleep.WakeFailed as exc:
        return error_response(str(exc), 503)
    session.refresh(app)
    return jsonify(apps.app_view(session, app, settings()))
