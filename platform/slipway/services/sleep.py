"""Sleep and wake: an idle app's web instances stop, and its next request starts them again.

A sleeping app keeps everything but its running instances: releases, config, formation, volumes
and spaces stay, and the router sends its requests to the wake service (``host/waker.py``),
which calls :func:`wake` and passes them on once the app answers. The router is switched
*before* instances stop and *after* they are live, so no request ever reaches a dead port.

Both directions hold the app's deploy lock, so a sleep, a wake and a deploy never overlap: a
deploy (or a config change or rollback) of a sleeping app wakes it too, by rolling out its
release with the health gate.
"""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.adapters import Adapters
from slipway.config import Settings, format_duration
from slipway.models import App, Instance, Release
from slipway.models import event as kinds
from slipway.models.instance import LIVE, STOPPED
from slipway.services import deploys, instances
from slipway.services.errors import Conflict, Invalid, SlipwayError
from slipway.services.logs import keep_logs

logger = logging.getLogger(__name__)

# A live instance whose port does not accept within this long is taken for gone.
ACCEPT_TIMEOUT = 1.0


class WakeFailed(SlipwayError):
    """The app could not be woken; the message says why in one sentence."""


def effective_sleep_after(app: App, settings: Settings) -> int:
    """Seconds without a request before the app sleeps (0: never): its own, else the platform's."""
    return settings.sleep_after if app.sleep_after is None else app.sleep_after


# ----------------------------------------------------------------------------- sleeping


def put_to_sleep(
    session: Session, adapters: Adapters, settings: Settings, app: App, reason: str
) -> None:
    """Stop the app's instances of its sleeping types until its next request.

    ``reason`` ends the ``app_slept`` event's message ("idle for 15m", "requested"). Raises
    Conflict while a deploy holds the app, Invalid when the app cannot sleep; an app that
    sleeps already is left as it is.
    """
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(deploys.app_lock(settings, app.id, timeout=0))
        except Conflict:
            raise Conflict(f"A deploy of {app.name} is running; it cannot sleep now.") from None
        session.refresh(app)
        if app.sleeping:
            return
        check_can_sleep(session, app)
        going = instances.running_instances(session, app)
        app.sleeping = True
        # The router sends the app's requests to the wake service before an instance stops
        # (stop_routing commits the switch; a router failure leaves the app awake).
        instances.stop_routing(session, adapters, going)
        if going:
            time.sleep(settings.drain_grace)  # requests already on their way finish
        for instance in going:
            keep_logs(settings, adapters.volumes, instance)
        instances.retire_all(session, adapters, going)
        message = f"{app.name} went to sleep: {reason}."
        key = f"slept:{app.id}:{time.time_ns()}"
        deploys.record_event(session, app, kinds.APP_SLEPT, message, {"reason": reason}, key)
        session.commit()
        logger.info("%s went to sleep (%s)", app.name, reason)


def check_can_sleep(session: Session, app: App) -> None:
    """Invalid (one sentence) when the app has nothing to sleep or runs what never sleeps."""
    if app.current_release_id is None:
        raise Invalid(f"{app.name} has no release yet; there is nothing to put to sleep.")
    sleepy = instances.sleep_types(app)
    awake = sorted({i.process_type for i in instances.running_instances(session, app)} - sleepy)
    if awake:
        raise Invalid(
            f"{app.name} runs {', '.join(awake)}, which does not sleep: add it to the app's "
            "sleep types or scale it to 0 first."
        )


def sleep_idle(
    session: Session,
    adapters: Adapters,
    settings: Settings,
    last_requests: dict[str, float],
    now: float | datetime,
) -> list[str]:
    """Put to sleep every awake app idle for its sleep_after; the names of those that slept.

    An app's last activity is the later of ``last_requests`` (unix time of its last request,
    from the router's traffic log) and its ``active_at`` (last request stored, wake or deploy).
    An app never seen active starts its count now. Apps a deploy holds, or that cannot sleep,
    are skipped until a later look.
    """
    at = now.timestamp() if isinstance(now, datetime) else float(now)
    slept = []
    candidates = select(App).where(App.sleeping.is_(False), App.current_release_id.is_not(None))
    for app in session.scalars(candidates.order_by(App.name)).all():
        after = effective_sleep_after(app, settings)
        if after <= 0 or int(app.formation.get("web", 0)) <= 0:
            continue  # never sleeps, or has no web to wake it by
        if app.active_at is None and app.name not in last_requests:
            app.active_at = datetime.fromtimestamp(at, UTC)
            session.commit()
            continue
        active = app.active_at.timestamp() if app.active_at is not None else 0.0
        last = max(active, last_requests.get(app.name, 0.0))
        if at - last < after:
            continue
        try:
            put_to_sleep(session, adapters, settings, app, f"idle for {format_duration(after)}")
        except (Conflict, Invalid) as exc:
            session.rollback()
            logger.debug("%s stays awake: %s", app.name, exc)
            continue
        except Exception:
            session.rollback()
            logger.exception("%s could not be put to sleep", app.name)
            continue
        slept.append(app.name)
    return slept


# ----------------------------------------------------------------------------- waking


def wake(session: Session, adapters: Adapters, settings: Settings, app_name: str) -> list[int]:
    """Host ports (on 127.0.0.1) of the app's live web instances, started when needed.

    Under the app's deploy lock: web instances that still accept are returned as they are
    (someone else woke the app). Otherwise web instances whose container is gone or whose port
    is closed are retired and new ones started, with the release's health gate. A failure
    undoes what this call started, records ``wake_failed`` and raises :class:`WakeFailed`.
    """
    app = session.scalar(select(App).where(App.name == app_name))
    if app is None:
        raise WakeFailed(f"No app named {app_name} is deployed here.")
    try:
        with deploys.app_lock(settings, app.id, settings.start_timeout):
            return _wake_locked(session, adapters, settings, app)
    except WakeFailed as exc:
        _record_failure(session, app, str(exc))
        raise
    except Conflict:
        reason = f"A deploy of {app.name} was still running after {settings.start_timeout} seconds."
        _record_failure(session, app, reason)
        raise WakeFailed(reason) from None
    except SlipwayError as exc:
        _record_failure(session, app, str(exc))
        raise WakeFailed(str(exc)) from exc
    except Exception as exc:
        logger.exception("%s: the wake stopped on an internal error", app.name)
        reason = f"The start stopped because of an internal error: {exc}"
        _record_failure(session, app, reason)
        raise WakeFailed(reason) from exc


def _wake_locked(session: Session, adapters: Adapters, settings: Settings, app: App) -> list[int]:
    session.refresh(app)
    release = app.current_release
    if release is None:
        raise WakeFailed(f"{app.name} has no release yet; deploy it first.")
    if int(app.formation.get("web", 0)) <= 0:
        raise WakeFailed(f"{app.name} has its web process scaled to 0; scale it up to serve.")
    web = _web_instances(session, app)
    was_sleeping = app.sleeping
    if not was_sleeping:
        if any(i.state == STOPPED for i in web):
            raise WakeFailed(f"The web process of {app.name} is stopped; start it with ps:start.")
        serving = _accepting(adapters, settings, web)
        if serving:
            return serving
    # Gone means start anew: none serves (vanished containers, closed ports), so all go.
    if web:
        logger.info("%s: starting anew in place of %s", app.name, _names(web))
        instances.retire_all(session, adapters, web)
    log = _log_for(app.name)
    wanted = _wanted(session, app, release, was_sleeping, log)
    new = instances.start_checked(session, adapters, settings, app, release, wanted, log)
    # It wakes: sleeping False and active_at now, in the transaction that routes to the new ones.
    instances.switch_and_drain(session, adapters, settings, app, release, new, [], log)
    if was_sleeping:
        message = f"{app.name} woke up: v{release.version} runs again."
        data = {"version": release.version, "instances": len(new)}
        key = f"woke:{app.id}:{time.time_ns()}"
        deploys.record_event(session, app, kinds.APP_WOKE, message, data, key)
        session.commit()
    ports = [i.host_port for i in _web_instances(session, app) if i.state == LIVE]
    return sorted(port for port in ports if port is not None)


def _wanted(
    session: Session, app: App, release: Release, was_sleeping: bool, log: instances.Log
) -> list[tuple[str, int]]:
    """``(process type, index)`` to start: the formation's web count (at least one), and the
    sleeping types' when the app slept, less what still runs."""
    types = instances.sleep_types(app) if was_sleeping else {"web"}
    plan = dict(instances.formation_plan(app, release, log))
    running = instances.running_instances(session, app)
    wanted = []
    for process_type in sorted(types & set(plan)):
        count = max(1, plan[process_type]) if process_type == "web" else plan[process_type]
        used = {i.index for i in running if i.process_type == process_type}
        free = (n for n in range(1, instances.MAX_PER_TYPE * 2) if n not in used)
        wanted += [(process_type, next(free)) for _ in range(count - len(used))]
    return sorted(wanted, key=lambda item: (item[0] != "web", item))


def _web_instances(session: Session, app: App) -> list[Instance]:
    return [i for i in instances.running_instances(session, app) if i.process_type == "web"]


def _accepting(adapters: Adapters, settings: Settings, web: list[Instance]) -> list[int]:
    """Ports of the live web instances whose container runs and whose port accepts."""
    running = {
        c.container_id
        for c in adapters.runtime.list(instances.platform_labels(settings))
        if c.status == "running"
    }
    return sorted(
        i.host_port
        for i in web
        if i.state == LIVE
        and i.host_port is not None
        and i.container_id in running
        and adapters.runtime.wait_for_port(i.host_port, ACCEPT_TIMEOUT)
    )


def _record_failure(session: Session, app: App, reason: str) -> None:
    """A ``wake_failed`` event (webhooks hear it); never hides the failure itself."""
    try:
        session.rollback()
        message = f"{app.name} could not be woken: {reason}"
        key = f"wake_failed:{app.id}:{time.time_ns()}"
        deploys.record_event(session, app, kinds.WAKE_FAILED, message, {"error": reason}, key)
        session.commit()
    except Exception:
        session.rollback()
        logger.exception("%s: the wake_failed event could not be recorded", app.name)


def _names(found: list[Instance]) -> str:
    return ", ".join(i.container_name for i in found)


def _log_for(app: str) -> instances.Log:
    return lambda line: logger.info("%s: %s", app, line.strip("- ").strip())
