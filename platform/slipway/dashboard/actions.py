"""The forms: each parses its fields, calls one service (the same as the API's), and redirects.

A domain error becomes a flashed message on the page the form came from; nothing it started
is committed.
"""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from kombu.exceptions import OperationalError as BrokerUnavailable
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from slipway.config import format_duration
from slipway.dashboard import bp, queries
from slipway.dashboard.auth import current_user
from slipway.dashboard.context import adapters, db, discard_session, settings, transactional
from slipway.dashboard.pages import find_app
from slipway.runtime.base import RuntimeUnavailable
from slipway.services import apps, deploy_cancel, deploys, processes, releases, webhooks
from slipway.services import instances as instance_service
from slipway.services.errors import Invalid, NotFound, SlipwayError
from slipway.services.webhook_targets import Targets

# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def back_url() -> str:
    """Where a failed form returns: its app's page, or the page it was posted to."""
    name = (request.view_args or {}).get("name")
    if name and request.method == "POST" and request.endpoint != "dashboard.app_page":
        return url_for("dashboard.app_page", name=name)
    return request.path if request.method == "POST" else url_for("dashboard.apps")


@bp.errorhandler(SlipwayError)
def _domain_error(error: SlipwayError) -> Response | tuple[str, int]:
    discard_session()  # a failed change leaves nothing half done
    if isinstance(error, NotFound) and request.method == "GET":
        return render_template("dashboard/error.html", message=str(error), status=404), 404
    flash(str(error), "error")
    return redirect(back_url())


@bp.errorhandler(RuntimeUnavailable)
@bp.errorhandler(BrokerUnavailable)
def _outside_system_down(error: Exception) -> Response:
    discard_session()
    if isinstance(error, RuntimeUnavailable):
        message = str(error) or "The container engine cannot be reached."
    else:
        message = "The task queue (Redis) cannot be reached, so the work was not started."
    flash(message, "error")
    return redirect(back_url())


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> tuple[str, int]:
    status = error.code or 500
    return render_template("dashboard/error.html", message=error.description, status=status), status


def done(message: str, name: str, anchor: str = "") -> Response:
    flash(message, "success")
    return redirect(url_for("dashboard.app_page", name=name) + (f"#{anchor}" if anchor else ""))


# ---------------------------------------------------------------------------------------------
# Releases and config
# ---------------------------------------------------------------------------------------------


@bp.route("/apps/<name>/rollback", methods=["POST"])
@transactional
def rollback(name: str) -> Response:
    app = find_app(name)
    version = _whole_number(request.form.get("version", ""), "release version")
    release = releases.rollback(db(), app, version)
    return done(f"Rolling back to v{version}: release v{release.version} is on its way.", name)


@bp.route("/apps/<name>/config", methods=["POST"])
@transactional
def set_config(name: str) -> Response:
    app = find_app(name)
    key = request.form.get("key", "").strip()
    value = request.form.get("value", "")
    if not key:
        raise Invalid("Give the config var a name.")
    release = releases.change_config(db(), app, {key: value})
    return done(_config_message(f"{key} is set", release), name, "config")


@bp.route("/apps/<name>/config/unset", methods=["POST"])
@transactional
def unset_config(name: str) -> Response:
    app = find_app(name)
    key = request.form.get("key", "")
    release = releases.change_config(db(), app, {key: None})
    return done(_config_message(f"{key} is unset", release), name, "config")


def _config_message(what: str, release: object) -> str:
    version = getattr(release, "version", None)
    return f"{what}; release v{version} is rolling out." if version else f"{what}."


# ---------------------------------------------------------------------------------------------
# Scaling
# ---------------------------------------------------------------------------------------------


@bp.route("/apps/<name>/scale", methods=["POST"])
@transactional
def scale(name: str) -> Response:
    app = find_app(name)
    formation = {
        key.removeprefix("count-"): _whole_number(value, f"count of {key.removeprefix('count-')}")
        for key, value in request.form.items()
        if key.startswith("count-")
    }
    result = instance_service.scale(db(), app, formation)
    summary = ", ".join(f"{kind}={count}" for kind, count in sorted(result.items()))
    return done(f"Scaling to {summary}.", name, "instances")


def _whole_number(text: str, what: str) -> int:
    text = text.strip().removeprefix("v")
    if not text.isdigit():
        raise Invalid(f"The {what} must be a whole number.")
    return int(text)


# ---------------------------------------------------------------------------------------------
# Sleep
# ---------------------------------------------------------------------------------------------


@bp.route("/apps/<name>/sleep", methods=["POST"])
@transactional
def sleep_app(name: str) -> Response:
    from slipway.services import sleep  # the sleep domain loads the router and instances

    app = find_app(name)
    sleep.put_to_sleep(db(), adapters(), settings(), app, "requested")
    return done(f"{name} is sleeping: the next request wakes it.", name, "sleep")


@bp.route("/apps/<name>/sleep/settings", methods=["POST"])
@transactional
def sleep_settings(name: str) -> Response:
    """An empty "sleep after" field follows the platform's setting."""
    app = find_app(name)
    after = request.form.get("sleep_after", "").strip()
    changes = {"sleep_after": after or None, "sleep_types": request.form.get("sleep_types", "")}
    apps.update_app(db(), app, changes, adapters(), settings())
    seconds = apps.sleep_after_of(app, settings())
    when = f"sleeps after {format_duration(seconds)} idle" if seconds else "never sleeps"
    return done(f"Sleep settings saved: {name} {when}.", name, "sleep")


# ---------------------------------------------------------------------------------------------
# Webhooks and the app itself
# ---------------------------------------------------------------------------------------------


@bp.route("/apps/<name>/webhooks", methods=["POST"])
@transactional
def add_webhook(name: str) -> Response:
    app = find_app(name)
    events = request.form.getlist("events") or None
    url = request.form.get("url", "").strip()
    targets = Targets.from_settings(settings())
    webhooks.create_webhook(db(), app, url, events, targets=targets)
    return done("The webhook is added.", name, "webhooks")


@bp.route("/apps/<name>/webhooks/<int:webhook_id>/delete", methods=["POST"])
@transactional
def delete_webhook(name: str, webhook_id: int) -> Response:
    webhooks.delete_webhook(db(), find_app(name), webhook_id)
    return done("The webhook is deleted.", name, "webhooks")


@bp.route("/apps/<name>/delete", methods=["POST"])
@transactional
def delete_app(name: str) -> Response:
    app = find_app(name)
    if request.form.get("confirm", "").strip() != app.name:
        raise Invalid(f"Type the app's name ({app.name}) to confirm deleting it.")
    apps.delete_app(db(), app, adapters(), settings())
    flash(f"The app {name} is deleted.", "success")
    return redirect(url_for("dashboard.apps"))


# ---------------------------------------------------------------------------------------------
# Deploying an uploaded tarball
# ---------------------------------------------------------------------------------------------


@bp.route("/apps/<name>/deploys", methods=["POST"])
@transactional
def upload_deploy(name: str) -> Response:
    app = find_app(name)
    upload = request.files.get("source")
    if upload is None or not upload.filename:
        raise Invalid("Choose a .tar.gz file of your app's source to deploy.")
    deploy = deploys.accept_tarball(
        db(), app, upload.stream, None, settings(), adapters().artifacts
    )
    flash(f"Deploy #{deploy.id} is queued.", "success")
    return redirect(url_for("dashboard.deploy_page", name=name, deploy_id=deploy.id))


@bp.route("/apps/<name>/deploys/<int:deploy_id>/cancel", methods=["POST"])
@transactional
def cancel_deploy(name: str, deploy_id: int) -> Response:
    app = find_app(name)
    deploy = queries.find_deploy(db(), app, deploy_id)
    if deploy is None:
        raise NotFound(f"App {app.name!r} has no deploy {deploy_id}.")
    deploy_cancel.cancel_deploy(db(), deploy, adapters(), settings(), current_user().username)
    flash(f"Deploy #{deploy_id} is cancelled.", "success")
    return redirect(url_for("dashboard.deploy_page", name=name, deploy_id=deploy_id))


# ---------------------------------------------------------------------------------------------
# Process control
# ---------------------------------------------------------------------------------------------


@bp.route("/apps/<name>/processes/<label>/<action>", methods=["POST"])
@transactional
def control_process(name: str, label: str, action: str) -> Response:
    """Restart, stop or start one instance's process (``label`` is like ``web.1``)."""
    app = find_app(name)
    process_type = label.partition(".")[0]
    processes.control(db(), adapters(), app, process_type, action, which=label)
    done_word = {"restart": "restarted", "stop": "stopped", "start": "started"}.get(action, action)
    return done(f"{label} is {done_word}.", name, "instances")
