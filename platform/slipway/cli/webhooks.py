"""`slipway webhooks`: signed HTTP notifications of an app's events."""

from __future__ import annotations

import click

from slipway.cli.client import Client
from slipway.cli.common import app_option, resolve_app
from slipway.cli.output import json_option, print_json, print_table

WEBHOOK_COLUMNS = ["id", "url", "events", "created_at"]
DELIVERY_COLUMNS = ["id", "event_type", "state", "attempts", "last_status", "created_at"]


@click.group("webhooks", invoke_without_command=True)
@app_option
@json_option
@click.pass_context
def webhooks(ctx: click.Context, app: str | None, as_json: bool) -> None:
    """List an app's webhooks; add, remove, and see their deliveries.

    \b
    Examples:
      slipway webhooks -a hello
      slipway webhooks:add https://example.com/hook -a hello --events crash,oom
      slipway webhooks:deliveries 3 -a hello
      slipway webhooks:remove 3 -a hello
    """
    if ctx.invoked_subcommand is not None:
        return
    rows = Client.from_environment().get(f"/apps/{resolve_app(app)}/webhooks")
    if as_json:
        print_json(rows)
        return
    print_table(rows, WEBHOOK_COLUMNS, "No webhooks.")


@webhooks.command("add")
@app_option
@click.argument("url")
@click.option(
    "-e", "--events", metavar="TYPE[,TYPE]", help="Event types to send (default: every type)."
)
@click.option("-s", "--secret", help="The signing secret (default: a new one, printed once).")
@json_option
def add(app: str | None, url: str, events: str | None, secret: str | None, as_json: bool) -> None:
    """Send an app's events to URL, signed with the secret (Slipway-Signature header).

    \b
    Examples:
      slipway webhooks:add https://example.com/hook -a hello
      slipway webhooks:add https://example.com/hook -a hello --events crash,oom --secret s3cret
    """
    body: dict[str, object] = {"url": url}
    if events:
        body["events"] = [e.strip() for e in events.split(",") if e.strip()]
    if secret:
        body["secret"] = secret
    created = Client.from_environment().post(f"/apps/{resolve_app(app)}/webhooks", body)
    if as_json:
        print_json(created)
        return
    kinds = ", ".join(created.get("events") or []) or "every event"
    click.echo(f"Added webhook {created.get('id')}: {created.get('url')} ({kinds})")
    if not secret:
        click.echo(f"Signing secret (shown only now, keep it): {created.get('secret')}")


@webhooks.command("remove")
@app_option
@click.argument("webhook_id", type=int, metavar="ID")
def remove(app: str | None, webhook_id: int) -> None:
    """Stop sending events to a webhook.

    \b
    Example:
      slipway webhooks:remove 3 -a hello
    """
    Client.from_environment().delete(f"/apps/{resolve_app(app)}/webhooks/{webhook_id}")
    click.echo(f"Removed webhook {webhook_id}.")


@webhooks.command("deliveries")
@app_option
@click.argument("webhook_id", type=int, metavar="ID")
@json_option
def deliveries(app: str | None, webhook_id: int, as_json: bool) -> None:
    """List a webhook's newest deliveries, with the last attempt's HTTP status or error.

    \b
    Example:
      slipway webhooks:deliveries 3 -a hello
    """
    path = f"/apps/{resolve_app(app)}/webhooks/{webhook_id}/deliveries"
    rows = Client.from_environment().get(path)
    if as_json:
        print_json(rows)
        return
    for row in rows:
        attempts = row.get("attempt_log") or []
        last = attempts[-1] if attempts else {}
        row["last_status"] = last.get("status_code") or last.get("error")
    print_table(rows, DELIVERY_COLUMNS, "No deliveries yet.")
