"""Send Celery tasks only once the database transaction that asked for them has committed.

A task that started before its row was committed would find nothing, and a task sent for a
transaction that rolls back would act on something that never happened. So services call
:func:`enqueue_after_commit`; the task is sent from the session's ``after_commit`` event and
dropped on rollback. Tests swap the sender with :func:`set_sender`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

Sender = Callable[[str, tuple[Any, ...]], None]

_PENDING = "slipway.pending_tasks"
_LISTENING = "slipway.dispatch_listening"


def send_with_celery(task_name: str, args: tuple[Any, ...]) -> None:
    """Send a task by name to the broker (the worker knows the body)."""
    from slipway.tasks import celery

    celery.send_task(task_name, args=list(args))


_sender: Sender = send_with_celery


def set_sender(sender: Sender) -> Sender:
    """Replace how tasks are sent (tests record them); returns the previous sender."""
    global _sender
    previous, _sender = _sender, sender
    return previous


def enqueue_after_commit(session: Session, task_name: str, *args: Any) -> None:
    """Send ``task_name(*args)`` when this session's transaction commits; never if it rolls back."""
    session.info.setdefault(_PENDING, []).append((task_name, args))
    if not session.info.get(_LISTENING):
        event.listen(session, "after_commit", _send_pending)
        event.listen(session, "after_rollback", _drop_pending)
        session.info[_LISTENING] = True


def pending_tasks(session: Session) -> list[tuple[str, tuple[Any, ...]]]:
    """What this session will send on commit (for tests and diagnostics)."""
    return list(session.info.get(_PENDING, []))


def _send_pending(session: Session) -> None:
    pending = session.info.pop(_PENDING, [])
    for task_name, args in pending:
        _sender(task_name, args)


def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)
