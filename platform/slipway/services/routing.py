"""What the router should serve, read from the database: every app, its live web instances, and
whether the wake service stands behind it."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.models import App, Instance
from slipway.models.instance import LIVE, STOPPED
from slipway.router.base import Route


def routes_from_db(session: Session) -> list[Route]:
    """One route per app.

    A sleeping app gets no instance (its requests go to the wake service while its instances
    stop); an app that is not wakeable and has no live web instance answers 503.
    """
    ports: dict[int, list[int]] = defaultdict(list)
    live = select(Instance.app_id, Instance.host_port).where(
        Instance.state == LIVE, Instance.process_type == "web", Instance.host_port.is_not(None)
    )
    for app_id, port in session.execute(live):
        if port is not None:
            ports[app_id].append(port)
    # A web process the user stopped (ps:stop) stays stopped: the router answers 503 for it
    # rather than have the wake service fail (and record wake_failed) on every request.
    stopped = set(
        session.scalars(
            select(Instance.app_id).where(Instance.state == STOPPED, Instance.process_type == "web")
        )
    )
    apps = session.execute(
        select(App.id, App.name, App.current_release_id, App.formation, App.sleeping).order_by(
            App.name
        )
    )
    return [
        Route(
            app=name,
            upstreams=[] if sleeping else sorted(ports[app_id]),
            wakeable=release_id is not None
            and int((formation or {}).get("web", 0)) > 0
            and app_id not in stopped,
            sleeping=bool(sleeping),
        )
        for app_id, name, release_id, formation, sleeping in apps
    ]
