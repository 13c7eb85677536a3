"""`git push` over HTTP: `git http-backend` behind the API, and the hook that deploys."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importing the package (tests import its hook module) needs no Flask
    from flask import Flask


def init_app(app: Flask) -> None:
    """Serve ``/git/<app>.git/...`` (needs ``slipway.api.context`` set up on the app)."""
    from slipway.gitserver.views import bp

    app.register_blueprint(bp)
