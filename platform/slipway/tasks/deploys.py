"""The pipeline's Celery tasks: take IDs, open a session, call one service, commit."""

from __future__ import annotations

from functools import cache

from slipway.adapters import Adapters, build_adapters
from slipway.config import get_settings
from slipway.services import deploys, reconciler
from slipway.tasks import DEPLOY_TASK, RECONCILE_TASK, ROLL_TASK, celery, task_session


@cache
def adapters() -> Adapters:
    """One set of adapters per worker process (the Docker client and nginx paths are reused)."""
    return build_adapters(get_settings())


@celery.task(name=DEPLOY_TASK)
def deploy(deploy_id: int) -> None:
    with task_session() as session:
        deploys.run_deploy(session, deploy_id, adapters(), get_settings())


@celery.task(name=ROLL_TASK)
def roll(app_id: int, release_id: int) -> None:
    with task_session() as session:
        deploys.run_roll(session, app_id, release_id, adapters(), get_settings())


@celery.task(name=RECONCILE_TASK)
def reconcile() -> None:
    with task_session() as session:
        reconciler.reconcile(session, adapters(), get_settings())
