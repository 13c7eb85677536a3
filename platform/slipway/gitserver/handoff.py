"""What the API process hands to the pre-receive hook through the environment.

The hook runs three processes away (API -> git http-backend -> git receive-pack -> hook), so
it gets the very settings the API runs with, serialised, instead of re-reading defaults.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict, fields
from pathlib import Path

from slipway.config import Settings

SETTINGS_VAR = "SLIPWAY_HOOK_SETTINGS"
APP_VAR = "SLIPWAY_GIT_APP"
USER_VAR = "SLIPWAY_GIT_USER_ID"
PYTHON_VAR = "SLIPWAY_PYTHON"


def encode_settings(settings: Settings) -> str:
    return json.dumps(asdict(settings), default=str)


def decode_settings(text: str) -> Settings:
    raw = json.loads(text)
    values: dict[str, object] = {}
    for f in fields(Settings):
        if f.name in raw:
            # Annotations are strings here (postponed evaluation); only Path needs converting.
            values[f.name] = Path(raw[f.name]) if f.type in ("Path", Path) else raw[f.name]
    return Settings(**values)  # type: ignore[arg-type]


def hook_environment(settings: Settings, app: str, user_id: int) -> dict[str, str]:
    """The variables the hook needs, to add to git http-backend's environment."""
    return {
        SETTINGS_VAR: encode_settings(settings),
        APP_VAR: app,
        USER_VAR: str(user_id),
        PYTHON_VAR: sys.executable,
    }


def settings_from_environment(environ: Mapping[str, str] = os.environ) -> Settings:
    """The handed-over settings, or the usual ones from the environment."""
    text = environ.get(SETTINGS_VAR)
    return decode_settings(text) if text else Settings.from_env()
