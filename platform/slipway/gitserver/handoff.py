"""What the API view hands to the pre-receive hook through the environment.

The hook runs three processes away (API -> git http-backend -> git receive-pack -> hook) and is
a plain client of the API, so it gets the API's loopback address, the pusher's token, the app
and its deploy branch, and which interpreter and file to run. Only a push (receive-pack) gets
them: the token is never in the environment of a fetch.
"""

from __future__ import annotations

import sys
from pathlib import Path

from slipway.config import Settings
from slipway.gitserver import hook
from slipway.host.control import loopback_url
from slipway.services.apps import app_url

PYTHON_VAR = "SLIPWAY_PYTHON"
HOOK_VAR = "SLIPWAY_GIT_HOOK"


def hook_environment(
    settings: Settings, app: str, branch: str, token: str, timeout: float
) -> dict[str, str]:
    """The variables the hook needs, to add to git http-backend's environment."""
    return {
        PYTHON_VAR: sys.executable,
        HOOK_VAR: str(Path(hook.__file__).resolve()),
        hook.API_VAR: loopback_url(settings.api_bind),
        hook.TOKEN_VAR: token,
        hook.APP_VAR: app,
        hook.BRANCH_VAR: branch,
        hook.APP_URL_VAR: app_url(settings, app),
        hook.TIMEOUT_VAR: str(int(timeout)),
    }
