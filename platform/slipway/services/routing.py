"""What the router should serve, read from the database: every app and its live web instances."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.models import App, Instance
from slipway.models.instance import LIVE
from slipway.router.base import Route


def routes_from_db(session: Session) -> list[Route]:
    """One route per app (an app with no live web instance gets none: the router answers 503)."""
    ports: dict[int, list[int]] = defaultdict(list)
    live = select(Instance.app_id, Instance.host_port).where(
        Instance.state == LIVE, Instance.process_type == "web", Instance.host_port.is_not(None)
    )
    for app_id, port in session.execute(live):
        if port is not None:
            ports[app_id].append(port)
    apps = session.execute(select(App.id, App.name).order_by(App.name))
    return [Route(app=name, upstreams=sorted(ports[app_id])) for app_id, name in apps]
