"""Webhooks: per-app subscriptions, signed JSON deliveries, retries with exponential backoff.

Each delivery is a POST whose body is signed in the ``Slipway-Signature`` header as
``t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed with the webhook's secret>``.

A delivery is attempted in three steps so that no database transaction is held open across the
HTTP call: *claim* (a conditional update that also takes a short lease, so two workers holding
the same message never both send), *post*, then *record* the attempt. A 2xx marks the delivery
``delivered`` and it is never sent again; anything else schedules a retry until the limit.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

import urllib3
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from slipway.config import Settings
from slipway.models import App, Delivery, DeliveryAttempt, Event, Webhook
from slipway.models import webhook as states
from slipway.models.event import EVENT_TYPES
from slipway.services.errors import Invalid, NotFound
from slipway.services.webhook_targets import TargetRefused, Targets

SIGNATURE_HEADER = "Slipway-Signature"
DELIVER_TASK = "slipway.deliver"
SIGNATURE_TOLERANCE = 300  # seconds a receiver should accept between t and its own clock
MAX_ERROR_LENGTH = 500
DEFAULT_PORTS = {"http": 80, "https": 443}

# ---------------------------------------------------------------------------------------------
# Signatures
# ---------------------------------------------------------------------------------------------


def sign(secret: str, body: bytes, t: int) -> str:
    """The ``Slipway-Signature`` value for ``body`` sent at unix time ``t``."""
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def verify(
    secret: str,
    body: bytes,
    header: str,
    tolerance: int = SIGNATURE_TOLERANCE,
    now: float | None = None,
) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` and its time is within tolerance."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance:
        return False
    expected = sign(secret, body, t).rpartition("v1=")[2]
    return hmac.compare_digest(expected, parts.get("v1", ""))


# ---------------------------------------------------------------------------------------------
# Subscriptions
# ---------------------------------------------------------------------------------------------


def _check_url(url: object, targets: Targets) -> str:
    try:
        parts = urlsplit(url) if isinstance(url, str) else None
        port = parts.port if parts is not None else None
    except ValueError:  # a port that is not a number
        parts = port = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid('A webhook needs a "url" starting with http:// or https://.')
    if len(str(url)) > 2048 or any(ord(c) <= 32 or ord(c) == 127 for c in str(url)):
        raise Invalid("A webhook URL has at most 2048 characters and no spaces or control ones.")
    try:
        targets.check_host(parts.hostname, port or DEFAULT_PORTS[parts.scheme])
    except TargetRefused as refused:
        raise Invalid(str(refused)) from None
    return str(url)


def _check_events(events: object) -> list[str]:
    if events is None:
        return ["*"]
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        raise Invalid('"events" must be a non-empty list of event types, or ["*"] for all.')
    unknown = sorted(set(events) - set(EVENT_TYPES) - {"*"})
    if unknown:
        raise Invalid(f"Unknown event types {unknown}; known: {', '.join(EVENT_TYPES)}.")
    return sorted(set(events))


def _check_secret(secret: object) -> str:
    if secret is None:
        return secrets.token_urlsafe(32)
    if not isinstance(secret, str) or not 16 <= len(secret) <= 255:
        raise Invalid('"secret" must be a string of 16 to 255 characters.')
    return secret


def create_webhook(
    session: Session,
    app: App,
    url: object,
    events: object = None,
    secret: object = None,
    targets: Targets | None = None,
) -> Webhook:
    """Subscribe ``url`` to ``events`` of ``app``; a secret is generated when none is given.

    A URL whose host may not receive webhooks (see :mod:`webhook_targets`; without ``targets``
    the strictest rules) is :class:`Invalid`.
    """
    webhook = Webhook(
        app_id=app.id,
        url=_check_url(url, targets or Targets()),
        events=_check_events(events),
        secret=_check_secret(secret),
    )
    session.add(webhook)
    session.flush()
    return webhook


def list_webhooks(session: Session, app: App) -> list[Webhook]:
    return list(session.scalars(select(Webhook).where(Webhook.app_id == app.id).order_by("id")))


def get_webhook(session: Session, app: App, webhook_id: int) -> Webhook:
    webhook = session.get(Webhook, webhook_id)
    if webhook is None or webhook.app_id != app.id:
        raise NotFound(f"App {app.name!r} has no webhook {webhook_id}.")
    return webhook


def delete_webhook(session: Session, app: App, webhook_id: int) -> None:
    session.delete(get_webhook(session, app, webhook_id))
    session.flush()


def list_deliveries(session: Session, webhook: Webhook, limit: int = 100) -> list[Delivery]:
    """The newest deliveries of a webhook, each with its attempts (``attempt_log``)."""
    query = (
        select(Delivery)
        .where(Delivery.webhook_id == webhook.id)
        .order_by(Delivery.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


# ---------------------------------------------------------------------------------------------
# Delivery
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """What one attempt sends: everything read from the database before the HTTP call."""

    delivery_id: int
    url: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Response:
    status_code: int | None
    duration_ms: int
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class Outcome:
    state: str  # the delivery's state after this call
    retry_in: float | None  # seconds until the task should run again, None when it is done
    sent: bool  # whether this call made an HTTP request


Poster = Callable[[Request, float], Response]
SessionOpener = Callable[[], AbstractContextManager[Session]]


def backoff_delay(attempts: int, settings: Settings) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt (1-based): doubling, capped."""
    return float(min(settings.webhook_backoff_max, settings.webhook_backoff * 2 ** (attempts - 1)))


def event_payload(event: Event, app_name: str, delivery_id: int) -> dict[str, Any]:
    return {
        "delivery": delivery_id,
        "event": {
            "id": event.id,
            "type": event.type,
            "app": app_name,
            "instance_id": event.instance_id,
            "message": event.message,
            "data": event.data,
            "created_at": event.created_at.isoformat(),
        },
    }


def claim(session: Session, delivery_id: int, settings: Settings, now: datetime) -> Request | None:
    """Take the next attempt of a due, pending delivery; None when it is done, absent or not due.

    The conditional update counts the attempt and leases the delivery past the HTTP timeout, so
    a duplicate message for the same delivery finds nothing to claim meanwhile.
    """
    lease = now + timedelta(seconds=settings.webhook_timeout + 30)
    claimed = session.execute(
        update(Delivery)
        .where(
            Delivery.id == delivery_id,
            Delivery.state == states.PENDING,
            or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now),
        )
        .values(attempts=Delivery.attempts + 1, next_attempt_at=lease)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]  # a CursorResult for an UPDATE
        return None
    delivery = session.get(Delivery, delivery_id, populate_existing=True)
    assert delivery is not None
    app_name = session.scalar(select(App.name).where(App.id == delivery.webhook.app_id)) or ""
    body = json.dumps(
        event_payload(delivery.event, app_name, delivery.id), sort_keys=True, separators=(",", ":")
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Slipway-Webhooks/1",
        "Slipway-Event": delivery.event.type,
        "Slipway-Delivery": str(delivery.id),
        SIGNATURE_HEADER: sign(delivery.webhook.secret, body, int(now.timestamp())),
    }
    return Request(delivery.id, delivery.webhook.url, body, headers)


def http_post(request: Request, timeout: float, targets: Targets | None = None) -> Response:
    """POST the request to an allowed address; never raises, trouble becomes the attempt's error.

    The host is resolved once and the connection made to a checked address (see
    :mod:`webhook_targets`); redirects are never followed (a redirect is not an
    acknowledgement), and nothing of the answer but its status is kept.
    """
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        status = pinned_post(request, timeout, targets or Targets())
    except TargetRefused as refused:
        return Response(None, took(), str(refused))
    except (OSError, ValueError, urllib3.exceptions.HTTPError) as exc:
        return Response(None, took(), f"{type(exc).__name__}: {exc}"[:MAX_ERROR_LENGTH])
    error = None if 200 <= status < 300 else f"HTTP {status}"
    return Response(status, took(), error)


def pinned_post(request: Request, timeout: float, targets: Targets) -> int:
    """POST to the first allowed address of the URL's host; the answer's status."""
    parts = urlsplit(request.url)
    host = parts.hostname or ""
    port = parts.port or DEFAULT_PORTS[parts.scheme]
    address = str(targets.addresses(host, port)[0])
    headers = {**request.headers, "Host": parts.netloc.rpartition("@")[2]}
    if parts.username is not None:
        headers |= urllib3.util.make_headers(
            basic_auth=f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        )
    limits = urllib3.Timeout(connect=timeout, read=timeout)
    pool: urllib3.HTTPConnectionPool
    if parts.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            address,
            port,
            timeout=limits,
            retries=False,
            server_hostname=host,  # SNI and the certificate check use the URL's host
            assert_hostname=host,
            cert_reqs="CERT_REQUIRED",
            ca_certs=targets.ca_certs,
        )
    else:
        pool = urllib3.HTTPConnectionPool(address, port, timeout=limits, retries=False)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    with pool:
        answer = pool.urlopen(
            "POST", path, body=request.body, headers=headers, redirect=False, retries=False
        )
        return int(answer.status)


def record(
    session: Session, delivery_id: int, response: Response, settings: Settings, now: datetime
) -> Outcome:
    """Store the attempt and move the delivery on: delivered, retry later, or failed."""
    delivery = session.get(Delivery, delivery_id, populate_existing=True)
    if delivery is None:  # the webhook was deleted while the request was in flight
        return Outcome(states.FAILED, None, True)
    session.add(
        DeliveryAttempt(
            delivery_id=delivery.id,
            status_code=response.status_code,
            duration_ms=response.duration_ms,
            error=response.error,
            created_at=now,
        )
    )
    if response.ok:
        delivery.state, delivery.next_attempt_at = states.DELIVERED, None
        return Outcome(delivery.state, None, True)
    if delivery.attempts >= settings.webhook_max_attempts:
        delivery.state, delivery.next_attempt_at = states.FAILED, None
        return Outcome(delivery.state, None, True)
    delay = backoff_delay(delivery.attempts, settings)
    delivery.next_attempt_at = now + timedelta(seconds=delay)
    return Outcome(delivery.state, delay, True)


def _not_claimed(session: Session, delivery_id: int, now: datetime) -> Outcome:
    delivery = session.get(Delivery, delivery_id)
    if delivery is None or delivery.state != states.PENDING:
        return Outcome(delivery.state if delivery else states.FAILED, None, False)
    due = delivery.next_attempt_at or now
    return Outcome(delivery.state, max(1.0, (due - now).total_seconds()), False)


def deliver(
    open_session: SessionOpener,
    delivery_id: int,
    settings: Settings,
    post: Poster | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Outcome:
    """One attempt at a delivery, each step in its own transaction; what the task does next.

    ``open_session`` comes from the edge (the Celery task) and commits when its block ends.
    """
    now = (clock or _utcnow)()
    with open_session() as session:
        request = claim(session, delivery_id, settings, now)
        if request is None:
            return _not_claimed(session, delivery_id, now)
    if post is None:
        targets = Targets.from_settings(settings)
        response = http_post(request, settings.webhook_timeout, targets)
    else:
        response = post(request, settings.webhook_timeout)
    with open_session() as session:
        return record(session, delivery_id, response, settings, (clock or _utcnow)())


def overdue_deliveries(session: Session, now: datetime, grace: float = 60) -> list[int]:
    """Pending deliveries whose retry is well past due (their message was lost): to re-send."""
    cutoff = now - timedelta(seconds=grace)
    query = select(Delivery.id).where(
        Delivery.state == states.PENDING,
        or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= cutoff),
        Delivery.created_at <= cutoff,
    )
    return list(session.scalars(query))


def touch(session: Session, delivery_id: int, now: datetime) -> None:
    """Make a pending delivery due now (before re-sending its lost message)."""
    session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.state == states.PENDING)
        .values(next_attempt_at=now)
        .execution_options(synchronize_session=False)
    )


def _utcnow() -> datetime:
    return datetime.now(UTC)
