"""Webhook delivery: one attempt per run; a retry is a new message sent after the commit."""

from __future__ import annotations

from slipway.config import get_settings
from slipway.services import webhooks
from slipway.tasks import celery, task_session


# acks_late: a worker killed mid-attempt leaves the message to be redelivered; the delivery's
# lease and state make the repeat harmless (a delivered delivery is never sent again).
@celery.task(name=webhooks.DELIVER_TASK, acks_late=True)
def deliver(delivery_id: int) -> None:
    outcome = webhooks.deliver(task_session, delivery_id, get_settings())
    if outcome.retry_in is not None:
        # deliver() has committed its transactions: the retry sees the stored schedule.
        deliver.apply_async((delivery_id,), countdown=outcome.retry_in)
