"""Celery: the app configured from Settings, and a base task that opens one session per run.

Tasks take IDs, open a session with :func:`task_session`, call one service and commit. They are
sent only after the sending transaction commits (``slipway.tasks.dispatch``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from celery import Celery, Task
from sqlalchemy.orm import Session, sessionmaker

from slipway.config import Settings, get_settings
from slipway.db import make_engine, make_session_factory, session_scope

DEPLOY_TASK = "slipway.deploy"
ROLL_TASK = "slipway.roll"
RECONCILE_TASK = "slipway.reconcile"

_session_factory: sessionmaker[Session] | None = None


def celery_config(settings: Settings) -> dict[str, object]:
    return {
        "broker_url": settings.redis_url,
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


class SlipwayTask(Task):  # type: ignore[misc]  # Celery ships no type information
    """The base of every Slipway task; ``self.session()`` is :func:`task_session`."""

    abstract = True

    def session(self) -> AbstractContextManager[Session]:
        return task_session()


celery = Celery("slipway", task_cls=SlipwayTask)
celery.conf.update(celery_config(get_settings()))

# Last, because the task bodies import the names above; importing them registers them.
from slipway.tasks import deploys as _deploys  # noqa: E402, F401
from slipway.tasks import webhooks as _webhooks  # noqa: E402, F401
