"""The pages: the apps list, a new app, an app, one deploy, the spaces. Reads only; forms are in
actions."""

from __future__ import annotations

from typing import Any

from flask import abort, redirect, render_template, request, url_for
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from slipway.dashboard import bp, queries
from slipway.dashboard.auth import current_user
from slipway.dashboard.context import adapters, db, settings, transactional
from slipway.models import App, Instance
from slipway.models.event import EVENT_TYPES
from slipway.services import apps, events, processes, releases, spaces, webhooks
from slipway.services import logs as app_logs

LOG_LINES = 200


@bp.route("/", endpoint="apps")
def apps_list() -> str:
    session = db()
    found = apps.list_apps(session, current_user())
    last = queries.last_deploys(session, found)
    crashed = queries.recently_crashed(session, found)
    rows = [
        {
            "view": apps.app_view(session, app, settings()),
            "last_deploy": last.get(app.id),
            "crashed": app.id in crashed,
        }
        for app in found
    ]
    return render_template("dashboard/apps.html", rows=rows, name_rule=apps.NAME_RULE)


@bp.route("/apps/new", methods=["GET", "POST"])
@transactional
def new_app() -> Response | str:
    if request.method == "POST":
        name = request.form.get("name", "").strip()
        app = apps.create_app(db(), current_user(), name, settings())
        return redirect(url_for("dashboard.app_page", name=app.name))
    return render_template("dashboard/new_app.html", name_rule=apps.NAME_RULE)


def find_app(name: str) -> App:
    return apps.get_app(db(), current_user(), name)


@bp.route("/apps/<name>")
def app_page(name: str) -> str:
    session = db()
    app = find_app(name)
    reveal = request.args.get("reveal") == "config"
    instance_rows = processes.app_instances(session, app, processes.LISTED_STATES)
    return render_template(
        "dashboard/app.html",
        app=app,
        view=apps.app_view(session, app, settings()),
        deploys=queries.recent_deploys(session, app),
        running=apps.running_deploy(session, app),
        releases=releases.list_releases(session, app)[:20],
        config=sorted(app.config.items()),
        reveal=reveal,
        process_types=_process_types(app),
        timeline=queries.timeline(session, app, events.list_events(session, app, limit=30)),
        hooks=[(hook, webhooks.list_deliveries(session, hook, 5)) for hook in _hooks(app)],
        event_types=EVENT_TYPES,
        instances=[_instance_row(instance) for instance in instance_rows],
        logs="\n".join(app_logs.tail(log_sources(session, app), LOG_LINES)),
        log_lines=LOG_LINES,
        max_upload=settings().max_upload_size,
        spaces=_attached_spaces(session, app),
    )


def _attached_spaces(session: Session, app: App) -> list[dict[str, Any]]:
    found = adapters()
    return [
        {
            "attachment": attachment,
            "usage": spaces.space_usage(found, attachment.space),
            "mount": f"{spaces.SPACES_ROOT}/{attachment.slot}/tree",
        }
        for attachment in spaces.attachments_of(session, app)
    ]


@bp.route("/spaces")
def spaces_page() -> str:
    found = adapters()
    rows = [
        (space, spaces.space_usage(found, space))
        for space in spaces.list_spaces(db(), current_user())
    ]
    copies = found.space_provider.copies if found.space_provider is not None else False
    return render_template("dashboard/spaces.html", rows=rows, copies=copies)


def _instance_row(instance: Instance) -> dict[str, Any]:
    """An instance with its process's supervisor state (read with supervisorctl)."""
    status = processes.program_status(adapters(), instance)
    return {
        "instance": instance,
        "label": processes.instance_label(instance),
        "process": status,
        "uptime": processes.format_uptime(status.uptime),
    }


def log_sources(session: Session, app: App) -> list[app_logs.LogSource]:
    """Every instance's log, and the kept logs of instances a deploy replaced."""
    current = app_logs.current_sources(session, adapters().volumes, app)
    return app_logs.old_sources(settings(), app) + current


def _hooks(app: App) -> list[Any]:
    return webhooks.list_webhooks(db(), app)


def _process_types(app: App) -> list[str]:
    """Every process type worth a scale field: the release's and the formation's."""
    known = set(app.formation)
    if app.current_release is not None:
        known |= set(app.current_release.process_types)
    return sorted(known, key=lambda t: (t != "web", t))


@bp.route("/apps/<name>/deploys/<int:deploy_id>")
def deploy_page(name: str, deploy_id: int) -> str:
    app = find_app(name)
    deploy = queries.find_deploy(db(), app, deploy_id)
    if deploy is None:
        abort(404, description=f"App {app.name!r} has no deploy {deploy_id}.")
    log, offset = queries.read_log(deploy.log_path)
    return render_template("dashboard/deploy.html", app=app, deploy=deploy, log=log, offset=offset)
