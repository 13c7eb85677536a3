"""A broker URL with a password: the embedded redis requires it, and nobody sees it in ``ps``."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import pytest
import redis

from tests.helpers import free_port
from tests.integration.platform import own_platform
from tests.integration.test_e2e_api import new_app, start_deploy, tar_files, wait_deploy

pytestmark = pytest.mark.slow


def test_the_embedded_redis_requires_the_urls_password_and_hides_it() -> None:
    password = secrets.token_urlsafe(18)
    port = free_port()
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    with own_platform({"SLIPWAY_REDIS_URL": url}) as platform:
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port, socket_timeout=5).ping()  # no password: refused
        assert redis.Redis(port=port, password=password, socket_timeout=5).ping()

        processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert password not in processes
        conf = next((platform.data_dir / "redis").glob("*.conf"))
        assert oct(conf.stat().st_mode & 0o777) == "0o600"

        # The worker takes tasks through the password: a deploy goes all the way.
        app = new_app(platform, "pw")
        answer = start_deploy(platform, app, tar_files({"index.html": "<p>behind a password</p>"}))
        assert answer.status_code == 202, answer.text
        assert wait_deploy(platform, app, answer.json()["id"])["state"] == "succeeded"
        assert "behind a password" in platform.http_get_app(app).text
        logs = "".join(
            p.read_text(errors="replace")
            for p in Path(platform.data_dir, "control-plane", "logs").glob("*.log")
        )
        assert password not in logs
