"""Cancelling a deploy, and cleaning up after a deploy whose worker is gone.

A cancel marks the deploy ``cancelled`` at once and records a ``deploy_cancelled`` event. A
running worker notices (``services.deploys``): it stops the build or release phase, undoes the
new instances it started, and releases the app's deploy lock. When no worker runs the deploy (it
is still queued, or its heartbeat stopped), the cancel removes what the deploy left itself, the
way the reconciler does for a deploy whose worker died.

A deploy is past cancelling once it ended, or once its release went live: the router switch and
the release becoming current are committed together, under the deploy row's lock.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from slipway.adapters import Adapters
from slipway.config import Settings
from slipway.models import Deploy, Instance
from slipway.models import event as kinds
from slipway.models.deploy import CANCELLED
from slipway.models.instance import STARTING
from slipway.services import instances
from slipway.services.builds import build_volume_names
from slipway.services.deploys import DeployLog, record_event, stop_deploy_containers
from slipway.services.errors import Conflict

logger = logging.getLogger(__name__)


def cancel_deploy(
    session: Session, deploy: Deploy, adapters: Adapters, settings: Settings, by: str
) -> Deploy:
    """Cancel a queued or running deploy; :class:`Conflict` once it ended or went live."""
    _lock_row(session, deploy.id)
    session.refresh(deploy)
    session.refresh(deploy.app)
    if deploy.is_finished:
        raise Conflict(
            f"Deploy {deploy.id} already ended ({deploy.state}); "
            "only a queued or running deploy can be cancelled."
        )
    if deploy.release_id is not None and deploy.app.current_release_id == deploy.release_id:
        raise Conflict(f"Deploy {deploy.id} is already live; roll back to undo it.")
    worker_gone = _worker_gone(deploy, settings)
    was = deploy.state
    deploy.state, deploy.error, deploy.finished_at = CANCELLED, f"Cancelled by {by}.", _now()
    message = f"Deploy {deploy.id} was cancelled by {by} while {was}."
    data = {"deploy_id": deploy.id, "by": by, "state": was}
    record_event(
        session, deploy.app, kinds.DEPLOY_CANCELLED, message, data, f"deploy:{deploy.id}:cancelled"
    )
    session.commit()
    _log(deploy, f"-----> Deploy cancelled by {by} while {was}")
    if worker_gone:
        try:
            clean_up(session, adapters, settings, deploy)
        except Exception as exc:  # the reconciler removes what is left of a finished deploy
            logger.warning(
                "cleanup after cancelled deploy %s left to the reconciler: %s", deploy.id, exc
            )
            session.rollback()
    return deploy


def clean_up(session: Session, adapters: Adapters, settings: Settings, deploy: Deploy) -> None:
    """Remove what a deploy without a worker left: its build or release-phase container, its
    build volumes and the instances it was starting. The old release keeps serving."""
    stop_deploy_containers(adapters, settings, deploy.id)
    for name in build_volume_names(deploy.id):
        adapters.volumes.destroy(name)
    if deploy.release_id is None:
        return
    half_started = select(Instance).where(
        Instance.release_id == deploy.release_id, Instance.state == STARTING
    )
    for instance in session.scalars(half_started).all():
        instances.retire(session, adapters, instance)


def _worker_gone(deploy: Deploy, settings: Settings) -> bool:
    """True when no worker runs the deploy: none took it yet, or its heartbeat stopped."""
    if deploy.heartbeat_at is None:
        return True
    return deploy.heartbeat_at < _now() - timedelta(seconds=settings.deploy_stale_after)


def _lock_row(session: Session, deploy_id: int) -> None:
    """Open a write transaction on the deploy's row (SQLite: the database), so the worker's
    last look before its router switch and this cancel happen one after the other."""
    session.commit()
    same = update(Deploy).where(Deploy.id == deploy_id).values(state=Deploy.state)
    session.execute(same.execution_options(synchronize_session=False))


def _log(deploy: Deploy, line: str) -> None:
    if deploy.log_path:
        log = DeployLog(Path(deploy.log_path))
        log(line)
        log.close()


def _now() -> datetime:
    return datetime.now(UTC)
