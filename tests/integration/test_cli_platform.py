"""`slipway` run as a subprocess against the whole running platform, real builds included."""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import wait_until
from tests.integration.platform import Platform
from tests.integration.test_git_platform import (
    commit_site,
    git,
    git_env,
    new_work_tree,
    page,
    serves,
)

pytestmark = pytest.mark.slow

SLIPWAY = str(Path(sys.executable).with_name("slipway"))


def cli_env(platform: Platform, home: Path) -> dict[str, str]:
    """What a user's shell has: slipway on PATH, a home of its own; no SLIPWAY_* overrides."""
    env = git_env(home, {"XDG_CONFIG_HOME": str(home / ".config")})
    env["PATH"] = f"{Path(SLIPWAY).parent}{os.pathsep}{env['PATH']}"
    return env


def slipway(
    *args: str, cwd: Path, env: dict[str, str], check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [SLIPWAY, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    if check and result.returncode != 0:
        raise AssertionError(f"slipway {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result


def test_an_app_from_login_to_destroy(running_platform: Platform, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = cli_env(running_platform, home)
    name = f"cli-{secrets.token_hex(3)}"
    work = new_work_tree(tmp_path / "site")

    login = ["login", "--url", running_platform.api_url, "--token", running_platform.admin_token]
    slipway(*login, cwd=work, env=env)
    stored = home / ".config" / "slipway" / "config.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600

    # The quick start: create (adds the remote), git push (the token comes from the login).
    slipway("apps:create", name, cwd=work, env=env)
    commit_site(work, page("one"), "first")
    pushed = git("push", "slipway", "main", cwd=work, env=env)
    assert f"remote: -----> Deployed: http://{name}.localhost" in pushed.stderr
    wait_until(serves(running_platform, name, "site one"), 60, "the pushed site is served")

    # A tarball deploy of the work tree, log followed live, URL at the end.
    commit_site(work, page("two"), "second")
    deployed = slipway("deploy", cwd=work, env=env)
    assert f"Deployed {name}: http://{name}.localhost" in deployed.stdout
    wait_until(serves(running_platform, name, "site two"), 60, "the deployed site is served")

    slipway("config:set", "GREETING=hi", cwd=work, env=env)
    assert slipway("config:get", "GREETING", cwd=work, env=env).stdout == "hi\n"
    versions = [
        r["version"] for r in json.loads(slipway("releases", "--json", cwd=work, env=env).stdout)
    ]
    assert versions == [3, 2, 1]

    rolled = slipway("rollback", "v1", cwd=work, env=env)
    assert "now v4" in rolled.stdout
    wait_until(serves(running_platform, name, "site one"), 120, "the rollback is served")

    slipway("scale", "web=2", cwd=work, env=env)

    def two_web_instances() -> bool:
        ps = json.loads(slipway("ps", "--json", cwd=work, env=env).stdout)
        web = [p for p in ps["processes"] if p["process_type"] == "web"]
        return len([p for p in web if p["instance_state"] == "live"]) == 2

    wait_until(two_web_instances, 180, "two web instances run")
    assert slipway("url", cwd=work, env=env).stdout.startswith(f"http://{name}.localhost")

    slipway("apps:destroy", "--confirm", name, cwd=work, env=env)
    listed = json.loads(slipway("apps", "--json", cwd=work, env=env).stdout)
    assert name not in [a["name"] for a in listed]


def test_failures_are_one_sentence_with_exit_status_1(
    running_platform: Platform, tmp_path: Path
) -> None:
    env = cli_env(running_platform, tmp_path) | {
        "SLIPWAY_URL": running_platform.api_url,
        "SLIPWAY_TOKEN": running_platform.admin_token,
    }
    missing = slipway("apps:info", "-a", "no-such-app", cwd=tmp_path, env=env, check=False)
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: ") and len(missing.stderr.strip().splitlines()) == 1

    name = f"cli-{secrets.token_hex(3)}"
    slipway("apps:create", name, "--no-remote", cwd=tmp_path, env=env)
    (tmp_path / "package.json").write_text("{ not json")
    failed = slipway("deploy", "-a", name, cwd=tmp_path, env=env, check=False)
    assert failed.returncode == 1
    assert failed.stderr.startswith("error: deploy ") and "failed" in failed.stderr

    refused = slipway("apps", cwd=tmp_path, env=env | {"SLIPWAY_TOKEN": "wrong"}, check=False)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: ")
