"""The JSON API at ``/api/v1``: the whole surface is the route table below."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask

from slipway.api import (
    apps,
    auth,
    config,
    deploys,
    errors,
    events,
    formation,
    logs,
    processes,
    releases,
    run,
    space_backups,
    spaces,
    terminal,
    users,
    webhooks,
)
from slipway.api.context import transactional

ROUTES: list[tuple[str, Callable[..., Any], list[str]]] = [
    ("/user", users.show_user, ["GET"]),
    ("/user/tokens", users.list_tokens, ["GET"]),
    ("/user/tokens", users.create_token, ["POST"]),
    ("/user/tokens/<int:token_id>", users.revoke_token, ["DELETE"]),
    ("/users", users.list_users, ["GET"]),
    ("/users", users.create_user, ["POST"]),
    ("/users/<username>", users.delete_user, ["DELETE"]),
    ("/apps", apps.list_apps, ["GET"]),
    ("/apps", apps.create_app, ["POST"]),
    ("/apps/<name>", apps.show_app, ["GET"]),
    ("/apps/<name>", apps.update_app, ["PATCH"]),
    ("/apps/<name>", apps.delete_app, ["DELETE"]),
    ("/apps/<name>/fork", apps.fork_app, ["POST"]),
    ("/apps/<name>/sleep", apps.sleep_app, ["POST"]),
    ("/apps/<name>/wake", apps.wake_app, ["POST"]),
    ("/apps/<name>/deploys", deploys.list_deploys, ["GET"]),
    ("/apps/<name>/deploys", deploys.create_deploy, ["POST"]),
    ("/apps/<name>/deploys/<int:deploy_id>", deploys.show_deploy, ["GET"]),
    ("/apps/<name>/deploys/<int:deploy_id>/log", deploys.deploy_log, ["GET"]),
    ("/apps/<name>/deploys/<int:deploy_id>/cancel", deploys.cancel_deploy, ["POST"]),
    ("/apps/<name>/releases", releases.list_releases, ["GET"]),
    ("/apps/<name>/rollback", releases.rollback, ["POST"]),
    ("/apps/<name>/config", config.show_config, ["GET"]),
    ("/apps/<name>/config", config.change_config, ["PATCH"]),
    ("/apps/<name>/scale", formation.scale, ["POST"]),
    ("/apps/<name>/processes", processes.list_processes, ["GET"]),
    ("/apps/<name>/processes/<process_type>/restart", processes.restart, ["POST"]),
    ("/apps/<name>/processes/<process_type>/stop", processes.stop, ["POST"]),
    ("/apps/<name>/processes/<process_type>/start", processes.start, ["POST"]),
    ("/apps/<name>/logs", logs.app_logs, ["GET"]),
    ("/apps/<name>/run", run.run_command, ["POST"]),
    ("/apps/<name>/run/tty", terminal.run_terminal, ["GET"]),
    ("/apps/<name>/events", events.list_events, ["GET"]),
    ("/apps/<name>/webhooks", webhooks.list_webhooks, ["GET"]),
    ("/apps/<name>/webhooks", webhooks.create_webhook, ["POST"]),
    ("/apps/<name>/webhooks/<int:webhook_id>", webhooks.delete_webhook, ["DELETE"]),
    ("/apps/<name>/webhooks/<int:webhook_id>/deliveries", webhooks.list_deliveries, ["GET"]),
    ("/apps/<name>/spaces", spaces.app_spaces, ["GET"]),
    ("/apps/<name>/spaces/<slot>", spaces.detach_space, ["DELETE"]),
    ("/spaces", spaces.list_spaces, ["GET"]),
    ("/spaces", spaces.create_space, ["POST"]),
    ("/spaces/fork", spaces.fork_space, ["POST"]),
    ("/spaces/<name>", spaces.show_space, ["GET"]),
    ("/spaces/<name>", spaces.delete_space, ["DELETE"]),
    ("/spaces/<name>/checkpoints", spaces.create_checkpoint, ["POST"]),
    ("/spaces/<name>/attach", spaces.attach_space, ["POST"]),
    ("/spaces/restore", space_backups.restore, ["POST"]),
    ("/spaces/backups/<int:backup_id>", space_backups.get_backup, ["GET"]),
    ("/spaces/<name>/backup", space_backups.download_backup, ["GET"]),
    ("/spaces/<name>/backups", space_backups.list_backups, ["GET"]),
]

WEBSOCKETS = {terminal.run_terminal}  # these answer only a websocket handshake


def make_blueprint() -> Blueprint:
    blueprint = Blueprint("api", __name__, url_prefix="/api/v1")
    blueprint.before_request(auth.authenticate)
    for rule, view, methods in ROUTES:
        blueprint.add_url_rule(
            rule, view_func=transactional(view), methods=methods, websocket=view in WEBSOCKETS
        )
    return blueprint


def init_app(app: Flask) -> None:
    errors.init_app(app)
    app.register_blueprint(make_blueprint())
