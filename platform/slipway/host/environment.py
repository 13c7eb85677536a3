"""The environment every control-plane process gets: the settings, spelled as SLIPWAY_* variables.

The processes read their settings from the environment (``Settings.from_env``), so the settings
``slipway server up`` was given are written out here, and any other SLIPWAY_* variable of the
caller is passed through unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from slipway.config import Settings

# The standard place of nginx, redis-server and supervisord, which a user's PATH may lack.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def settings_env(settings: Settings) -> dict[str, str]:
    """The SLIPWAY_* variables that make ``Settings.from_env()`` return these settings."""
    env = {
        "SLIPWAY_DATA_DIR": str(settings.data_dir),
        "SLIPWAY_API_BIND": settings.api_bind,
        "SLIPWAY_ROUTER_BIND": settings.router_bind,
        "SLIPWAY_DOMAIN": settings.domain,
        "SLIPWAY_REDIS_URL": settings.redis_url,
        "SLIPWAY_VOLUME_PROVIDER": settings.volume_provider,
        "SLIPWAY_IMAGE_PREFIX": settings.image_prefix,
        "SLIPWAY_IMAGES_DIR": str(settings.images_dir),
        "SLIPWAY_BUILD_TIMEOUT": str(settings.build_timeout),
        "SLIPWAY_BUILD_VOLUME_SIZE": str(settings.build_volume_size),
        "SLIPWAY_BUILD_MEMORY": str(settings.build_memory),
        "SLIPWAY_BUILD_PIDS": str(settings.build_pids),
        "SLIPWAY_CA_BUNDLE": str(settings.ca_bundle),
        "SLIPWAY_INSTANCE_VOLUME_SIZE": str(settings.instance_volume_size),
        "SLIPWAY_DEFAULT_MEMORY": str(settings.default_memory),
        "SLIPWAY_INSTANCE_PIDS": str(settings.instance_pids),
        "SLIPWAY_START_TIMEOUT": str(settings.start_timeout),
        "SLIPWAY_DEPLOY_START_TIMEOUT": str(settings.deploy_start_timeout),
        "SLIPWAY_MAX_UPLOAD_SIZE": str(settings.max_upload_size),
        "SLIPWAY_KEEP_RELEASES": str(settings.keep_releases),
        "SLIPWAY_LVM_VG": settings.lvm_volume_group,
        "SLIPWAY_LVM_THINPOOL": settings.lvm_thin_pool,
        "SLIPWAY_APP_UID": str(settings.app_uid),
    }
    if settings.database_url:
        env["SLIPWAY_DATABASE_URL"] = settings.database_url
    return env


def process_env(settings: Settings, caller: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's SLIPWAY_* variables, then these settings, plus a PATH with the system dirs."""
    caller = os.environ if caller is None else caller
    env = {key: value for key, value in caller.items() if key.startswith("SLIPWAY_")}
    env |= settings_env(settings)
    path = caller.get("PATH", "")
    env["PATH"] = f"{path}:{SYSTEM_PATH}" if path else SYSTEM_PATH
    env["PYTHONUNBUFFERED"] = "1"
    return env
