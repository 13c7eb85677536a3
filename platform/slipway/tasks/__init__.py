"""Celery: the app configured from Settings, and a base task that opens one session per run.

Tasks take IDs, open a session with :func:`task_session`, call one service and commit. They are
sent only after the sending transaction commits (``slipway.tasks.dispatch``).

Task ids are bare database ids, so a task must never reach another platform's worker: the queue
and every broker key carry the platform id (``Settings.platform_id``), every message carries it in
a header, and a worker acknowledges and drops a message whose header names another platform.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from celery import Celery, Task
from celery.signals import before_task_publish
from sqlalchemy.orm import Session, sessionmaker

from slipway.config import Settings, get_settings
from slipway.db import make_engine, make_session_factory, session_scope

DEPLOY_TASK = "slipway.deploy"
ROLL_TASK = "slipway.roll"
RECONCILE_TASK = "slipway.reconcile"
# The message header naming the platform a task was sent by (and for).
PLATFORM_HEADER = "slipway_platform"

logger = logging.getLogger(__name__)

_session_factory: sessionmaker[Session] | None = None


def queue_name(platform_id: str) -> str:
    """The platform's one task queue (also its exchange and routing key)."""
    return f"slipway.{platform_id}"


def celery_config(settings: Settings) -> dict[str, object]:
    queue = queue_name(settings.platform_id)
    return {
        "broker_url": settings.redis_url,
        # Two platforms pointed at one redis (a second platform's redis failed to start on a
        # taken port, or a shared broker) use different queues and keys and never meet.
        "task_default_queue": queue,
        "task_default_exchange": queue,
        "task_default_routing_key": queue,
        "control_exchange": queue,
        "broker_transport_options": {"global_keyprefix": f"{queue}:"},
        "slipway_platform": settings.platform_id,
        "broker_connection_retry_on_startup": True,
        # A task is acknowledged when it ends, so a worker killed in the middle leaves the
        # message to be delivered again instead of losing it.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        "worker_hijack_root_logger": False,
    }


def configure(settings: Settings) -> None:
    """Point the Celery app and the task sessions at these settings (tests, the worker)."""
    global _session_factory
    celery.conf.update(celery_config(settings))
    _session_factory = make_session_factory(make_engine(settings))


def session_factory() -> sessionmaker[Session]:
    global _session_factory
    if _session_factory is None:
        _session_factory = make_session_factory(make_engine(get_settings()))
    return _session_factory


@contextmanager
def task_session() -> Iterator[Session]:
    """A session for one task run: committed when the block ends, rolled back if it raises."""
    with session_scope(session_factory()) as session:
        yield session


def this_platform() -> str:
    return str(celery.conf.get("slipway_platform"))


class SlipwayTask(Task):  # type: ignore[misc]  # Celery ships no type information
    """The base of every Slipway task; ``self.session()`` is :func:`task_session`.

    A message from another platform (or with no platform) is logged and dropped: returning
    without running acknowledges it, so it is not delivered here again.
    """

    abstract = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        sender = self.request.get(PLATFORM_HEADER)
        if not self.request.called_directly and sender != this_platform():
            logger.error(
                "dropped task %s %s%r: it was sent for platform %r, this is platform %r",
                self.name,
                self.request.id,
                tuple(args),
                sender,
                this_platform(),
            )
            return None
        return super().__call__(*args, **kwargs)

    def session(self) -> AbstractContextManager[Session]:
        return task_session()


celery = Celery("slipway", task_cls=SlipwayTask)
celery.conf.update(celery_config(get_settings()))


@before_task_publish.connect
def _stamp_platform(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """Every message this process sends names this platform (a retry's too)."""
    if headers is not None:
        headers.setdefault(PLATFORM_HEADER, this_platform())


# Last, because the task bodies import the names above; importing them registers them.
from slipway.tasks import deploys as _deploys  # noqa: E402, F401
from slipway.tasks import webhooks as _webhooks  # noqa: E402, F401
