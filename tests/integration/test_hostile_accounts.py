"""Hostile tenants against accounts and what belongs to them, on the real running platform.

Mallory (an ordinary user) tries to leave a poisoned build cache or git history behind for the
next owner of an app name, to keep using a revoked token or a deleted user's token (API and git),
to keep a dashboard session after sign-out or a password change, to guess passwords, to reach
outside a repository with ``..`` in a git URL, and to point webhooks at the platform's host.
Every attack asserts that it fails, that the host's files did not change where it could have
written, and that the attacker learned nothing from the answers.
"""

from __future__ import annotations

import base64
import http.client
import os
import re
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from tests.helpers import free_port
from tests.integration.hostile import (
    HostRecord,
    Secrets,
    Tenant,
    alice,
    assert_no_leak,
    create_app,
    deploy,
    host_secrets,
    make_tenant,
    mallory,
    planted,
    tarball,
)
from tests.integration.platform import WEBHOOK_RECEIVER_HOST, Platform, _logs
from tests.integration.test_webhooks_delivery import Receiver

__all__ = ["alice", "mallory", "planted"]  # fixtures, used by name

pytestmark = pytest.mark.slow

GIT_TIMEOUT = 300
# Written meanwhile by the platforms' own root processes (gunicorn's control socket, Python's
# multiprocessing, runc for `docker exec`), this run's or a concurrent one's: not the attacker's.
PLATFORM_NOISE = ("/root/.gunicorn/", "/tmp/pymp-", "/tmp/runc-process")


# ----------------------------------------------------------------------------- helpers


@contextmanager
def host_unchanged_here(planted: Secrets) -> Iterator[None]:
    """:func:`host_unchanged`, apart from what concurrent test runs and tools do: their
    platforms' noise, their own planted secrets coming and going (ours are still compared), and
    their entries in /tmp and /var/tmp, which no attack in this module points at (its links
    point at /etc, /root and the planted secrets)."""
    before = HostRecord()
    yield
    changed = before.changes(HostRecord(), PLATFORM_NOISE)
    ours = str(planted.directory)
    changed = [
        line
        for line in changed
        if not (line.startswith("/root/slipway-hostile-") and not line.startswith(ours))
        and os.path.dirname(line.partition(":")[0]) not in ("/tmp", "/var/tmp")
    ]
    assert not changed, "the host changed:\n" + "\n".join(changed[:20])


def forbidden(platform: Platform, planted: Secrets) -> list[str]:
    return host_secrets(platform, planted)


def git_env(home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "Mallory",
        "GIT_AUTHOR_EMAIL": "m@example.com",
        "GIT_COMMITTER_NAME": "Mallory",
        "GIT_COMMITTER_EMAIL": "m@example.com",
    }


def git(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=git_env(cwd),
        capture_output=True,
        text=True,
        timeout=GIT_TIMEOUT,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def remote(platform: Platform, app: str, token: str) -> str:
    return f"http://git:{token}@{platform.api_url.removeprefix('http://')}/git/{app}.git"


def destroy(platform: Platform, tenant: Tenant, app: str) -> None:
    answer = platform.api("DELETE", f"/apps/{app}", token=tenant.token)
    assert answer.status_code == 204, answer.text + _logs(platform.data_dir)


def raw_get(platform: Platform, path: str, token: str) -> tuple[int, str]:
    """GET ``path`` exactly as written (no client normalises ``..`` away)."""
    host, _, port = platform.api_url.removeprefix("http://").rpartition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        auth = base64.b64encode(f"git:{token}".encode()).decode()
        connection.request("GET", path, headers={"Authorization": f"Basic {auth}"})
        answer = connection.getresponse()
        return answer.status, answer.read().decode("utf-8", "replace")
    finally:
        connection.close()


# ----------------------------------------------------------------------------- the build cache

# A build backend that runs during `pip install .` in Mallory's build (as the build user, inside
# the build container) and leaves, in the app's build cache, a marker and a "cached virtualenv"
# for the most common requirements.txt (an empty one) with a .pth file that runs in every app
# built from it. Then it fails the build: the cache stays.
POISON_BACKEND = """\
import hashlib, os, pathlib, platform, tarfile

def _plant():
    cache, out = pathlib.Path(os.environ["CACHE"]), pathlib.Path(os.environ["OUTPUT"])
    (cache / "marker-{mark}").write_text("mallory was here")
    venv = out / ".venv"
    site = next(venv.glob("lib/python3*/site-packages"))
    (site / "zz_poison.pth").write_text("import os; os.environ['POISONED'] = '{mark}'\\n")
    key = platform.python_version() + "-" + hashlib.sha256(b"").hexdigest()[:16]
    target = cache / "venv" / key
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(target / "venv.tar", "w") as tar:
        tar.add(venv, arcname=".")
    # Links out of the cache, for whoever cleans it up as root to follow.
    deep = cache / "deep" / "a" / "b"
    deep.mkdir(parents=True, exist_ok=True)
    for link, target in (
        (cache / "to-etc", "/etc"),
        (cache / "to-secrets", "{secrets}"),
        (cache / "to-token", "{token}"),
        (deep / "to-root", "/root"),
        (deep / "up", "../../../.."),
    ):
        link.symlink_to(target)

def get_requires_for_build_wheel(config_settings=None):
    _plant()
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    raise RuntimeError("the poison is in the cache")
"""

POISON_PYPROJECT = """\
[build-system]
requires = []
build-backend = "poison"
backend-path = ["."]

[project]
name = "poison-app"
version = "1"
"""

VICTIM_APP = """\
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = os.environ.get("POISONED", "clean").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

HTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
"""


def test_a_destroyed_apps_build_cache_never_reaches_the_next_owner_of_its_name(
    running_platform: Platform, mallory: Tenant, alice: Tenant, planted: Secrets
) -> None:
    platform = running_platform
    mark = secrets.token_hex(8)
    name = create_app(platform, mallory, "cache")
    cache = platform.settings.cache_dir / name
    poison = tarball(
        [
            ("pyproject.toml", POISON_PYPROJECT),
            (
                "poison.py",
                POISON_BACKEND.replace("{mark}", mark)
                .replace("{secrets}", str(planted.directory))
                .replace("{token}", str(planted.text)),
            ),
        ]
    )
    with host_unchanged_here(planted):
        state, shown = deploy(platform, mallory, name, poison)
    assert state["state"] == "failed", state
    # The attack did plant its cache (else this test would prove nothing).
    assert (cache / f"marker-{mark}").is_file()
    assert (cache / "venv").is_dir() and list((cache / "venv").glob("*/venv.tar"))
    assert (cache / "deep" / "a" / "b" / "to-root").is_symlink()

    with host_unchanged_here(planted):  # removing the cache follows none of its links
        destroy(platform, mallory, name)
    assert planted.text.is_file() and planted.json.is_file()
    assert not cache.exists() and not (platform.settings.git_dir / f"{name}.git").exists()

    answer = platform.api("POST", "/apps", token=alice.token, json={"name": name})
    assert answer.status_code == 201, answer.text
    victim = tarball(
        [("requirements.txt", ""), ("Procfile", "web: python app.py\n"), ("app.py", VICTIM_APP)]
    )
    try:
        state, seen = deploy(platform, alice, name, victim)
        log = seen[-1]
        assert state["state"] == "succeeded", log
        assert "from the build cache" not in log and "Creating the virtualenv" in log
        served = platform.http_get_app(name, "/")
        assert served.status_code == 200 and served.text == "clean"
        assert not list(cache.glob("marker-*"))
    finally:
        destroy(platform, alice, name)
    assert_no_leak(shown, forbidden(platform, planted))


# A build that keeps writing into its cache for two minutes: the app is destroyed under it.
BUSY_BACKEND = """\
import os, pathlib, time

def get_requires_for_build_wheel(config_settings=None):
    cache = pathlib.Path(os.environ["CACHE"])
    (cache / "started").write_text("building")
    for n in range(600):
        (cache / f"late-{n}").write_text("still here")
        time.sleep(0.2)
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    raise RuntimeError("never reached")
"""


def test_an_app_destroyed_during_its_build_leaves_no_cache_behind(
    running_platform: Platform, mallory: Tenant, alice: Tenant, planted: Secrets
) -> None:
    platform = running_platform
    name = create_app(platform, mallory, "race")
    cache = platform.settings.cache_dir / name
    source = tarball(
        [("pyproject.toml", POISON_PYPROJECT.replace("poison", "busy")), ("busy.py", BUSY_BACKEND)]
    )
    for _ in range(2):  # the second waits for the first: it is queued when the app goes
        answer = platform.api(
            "POST",
            f"/apps/{name}/deploys",
            token=mallory.token,
            data=source,
            headers={"Content-Type": "application/gzip"},
        )
        assert answer.status_code == 202, answer.text
    deadline = time.monotonic() + 240
    while not (cache / "started").exists():
        assert time.monotonic() < deadline, "the build never started writing its cache"
        time.sleep(0.5)

    with host_unchanged_here(planted):
        destroy(platform, mallory, name)  # waits until the build is stopped
    assert not cache.exists()
    time.sleep(5)
    assert not cache.exists()  # nothing of the stopped build, nor the queued one, writes there
    assert platform.api("GET", f"/apps/{name}", token=mallory.token).status_code == 404

    assert platform.api("POST", "/apps", token=alice.token, json={"name": name}).status_code == 201
    try:
        assert not cache.exists()
        assert platform.api("GET", f"/apps/{name}/deploys", token=alice.token).json() == []
        assert platform.api("GET", f"/apps/{name}/events", token=alice.token).json() == []
    finally:
        destroy(platform, alice, name)


# ----------------------------------------------------------------------------- git history


def test_the_next_owner_of_a_name_sees_none_of_the_old_git_history(
    running_platform: Platform, mallory: Tenant, alice: Tenant, tmp_path: Path
) -> None:
    platform = running_platform
    name = create_app(platform, mallory, "hist")
    work = tmp_path / "mallory"
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    (work / "note.txt").write_text(f"mallory's history {secrets.token_hex(8)}\n")
    git("add", "-A", cwd=work)
    git("commit", "-qm", "planted for the next owner", cwd=work)
    old = git("rev-parse", "HEAD", cwd=work).stdout.strip()
    # Another branch than the deploy branch is stored without a deploy.
    git("push", remote(platform, name, mallory.token), "main:planted", cwd=work)
    heads = git("ls-remote", remote(platform, name, mallory.token), cwd=work).stdout
    assert old in heads  # the history was really there

    destroy(platform, mallory, name)
    assert platform.api("POST", "/apps", token=alice.token, json={"name": name}).status_code == 201
    try:
        mine = tmp_path / "alice"
        mine.mkdir()
        listed = git("ls-remote", remote(platform, name, alice.token), cwd=mine)
        assert listed.stdout.strip() == ""
        clone = git("clone", "-q", remote(platform, name, alice.token), "c", cwd=mine)
        assert "empty repository" in clone.stderr
        git("fetch", "-q", remote(platform, name, alice.token), old, cwd=mine / "c", check=False)
        missing = git("cat-file", "-e", old, cwd=mine / "c", check=False)
        assert missing.returncode != 0
    finally:
        destroy(platform, alice, name)


# ----------------------------------------------------------------------------- tokens and users


def git_refused(platform: Platform, app: str, token: str, cwd: Path) -> str:
    result = git("ls-remote", remote(platform, app, token), cwd=cwd, check=False)
    assert result.returncode != 0
    assert "Authentication failed" in result.stderr or "401" in result.stderr, result.stderr
    return result.stdout + result.stderr


def test_a_revoked_token_is_refused_at_once_by_the_api_and_git(
    running_platform: Platform, mallory: Tenant, alice: Tenant, planted: Secrets, tmp_path: Path
) -> None:
    platform = running_platform
    name = create_app(platform, mallory, "tok")
    try:
        made = platform.api("POST", "/user/tokens", token=mallory.token, json={"name": "laptop"})
        assert made.status_code == 201
        spare = made.json()["token"]
        assert git("ls-remote", remote(platform, name, spare), cwd=tmp_path).returncode == 0
        dashboard = browser()  # a dashboard session started with the token
        assert sign_in(platform, dashboard, method="token", token=spare).status_code == 302
        assert signed_in(platform, dashboard)
        listed = platform.api("GET", "/user/tokens", token=mallory.token).json()
        assert spare not in str(listed) and mallory.token not in str(listed)
        (laptop,) = [t["id"] for t in listed if t["name"] == "laptop"]
        shown = [str(listed)]
        # Alice cannot see, nor revoke, Mallory's token; Mallory cannot revoke Alice's.
        alices = platform.api("GET", "/user/tokens", token=alice.token).json()[0]["id"]
        for who, token_id in ((alice, laptop), (mallory, alices)):
            refused = platform.api("DELETE", f"/user/tokens/{token_id}", token=who.token)
            assert refused.status_code == 404, refused.text
            shown.append(refused.text)
        peek = platform.api("GET", f"/user/tokens?user={alice.username}", token=mallory.token)
        assert peek.status_code == 403
        shown.append(peek.text)
        revoked = platform.api("DELETE", f"/user/tokens/{laptop}", token=mallory.token)
        assert revoked.status_code == 204

        answer = platform.api("GET", "/apps", token=spare)
        assert answer.status_code == 401 and name not in answer.text
        shown.append(answer.text)
        shown.append(git_refused(platform, name, spare, tmp_path))
        assert not signed_in(platform, dashboard)
        again = sign_in(platform, browser(), method="token", token=spare)
        assert again.status_code == 401
        assert platform.api("GET", "/apps", token=mallory.token).status_code == 200
        assert_no_leak(shown, forbidden(platform, planted))
    finally:
        destroy(platform, mallory, name)


def test_a_deleted_users_tokens_apps_and_files_go_at_once(
    running_platform: Platform, mallory: Tenant, planted: Secrets, tmp_path: Path
) -> None:
    platform = running_platform
    eve = make_tenant(platform, "eve")
    name = create_app(platform, eve, "eve")
    git("ls-remote", remote(platform, name, eve.token), cwd=tmp_path)  # makes its repository
    assert (platform.settings.git_dir / f"{name}.git").is_dir()
    dashboard = browser()
    assert sign_in(platform, dashboard, method="token", token=eve.token).status_code == 302

    # Only an admin deletes users; one with apps needs force.
    by_mallory = platform.api("DELETE", f"/users/{eve.username}", token=mallory.token)
    assert by_mallory.status_code == 403
    kept = platform.api("DELETE", f"/users/{eve.username}")
    assert kept.status_code == 409 and name in kept.json()["error"]
    assert platform.api("GET", "/apps", token=eve.token).status_code == 200

    gone = platform.api("DELETE", f"/users/{eve.username}?force=1")
    assert gone.status_code == 200 and gone.json()["destroyed_apps"] == [name]
    answer = platform.api("GET", "/apps", token=eve.token)
    assert answer.status_code == 401
    shown = [by_mallory.text, answer.text, git_refused(platform, name, eve.token, tmp_path)]
    assert platform.api("GET", f"/apps/{name}").status_code == 404
    assert not signed_in(platform, dashboard)
    assert not (platform.settings.git_dir / f"{name}.git").exists()
    assert not (platform.settings.cache_dir / name).exists()
    assert_no_leak(shown, forbidden(platform, planted))


def test_the_admin_cannot_delete_themselves(running_platform: Platform) -> None:
    answer = running_platform.api("DELETE", "/users/admin")
    assert answer.status_code == 409 and "yourself" in answer.json()["error"]


# ----------------------------------------------------------------------------- dashboard sessions


def browser() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


def csrf(session: requests.Session, url: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', session.get(url, timeout=30).text)
    assert found, "no CSRF field on the page"
    return found.group(1)


def sign_in(platform: Platform, session: requests.Session, **form: str) -> requests.Response:
    url = platform.api_url + "/signin"
    data = {"csrf_token": csrf(session, url), **form}
    return session.post(url, data=data, allow_redirects=False, timeout=30)


def signed_in(platform: Platform, session: requests.Session) -> bool:
    answer = session.get(platform.api_url + "/", allow_redirects=False, timeout=30)
    return answer.status_code == 200


def copy_of(platform: Platform, session: requests.Session) -> requests.Session:
    """Another browser holding a copy of the session cookie (as a thief would)."""
    thief = browser()
    thief.cookies.set("slipway_session", session.cookies["slipway_session"])
    return thief


def test_a_copied_dashboard_cookie_stops_working_at_sign_out(
    running_platform: Platform, mallory: Tenant
) -> None:
    platform = running_platform
    victim = browser()
    assert sign_in(platform, victim, method="token", token=mallory.token).status_code == 302
    thief = copy_of(platform, victim)
    assert signed_in(platform, thief)  # the copy works while the session lives
    out = victim.post(
        platform.api_url + "/signout",
        data={"csrf_token": csrf(victim, platform.api_url + "/")},
        allow_redirects=False,
        timeout=30,
    )
    assert out.status_code == 302
    assert not signed_in(platform, thief) and not signed_in(platform, victim)


def test_a_password_change_ends_every_other_session_of_the_user(
    running_platform: Platform,
) -> None:
    platform = running_platform
    user = make_tenant(platform, "pw")
    here = browser()
    assert sign_in(platform, here, method="token", token=user.token).status_code == 302
    first = "first horse battery"
    url = platform.api_url + "/account/password"
    changed = here.post(
        url,
        data={"csrf_token": csrf(here, url), "current": "", "new": first, "confirm": first},
        allow_redirects=False,
        timeout=30,
    )
    assert changed.status_code == 302
    elsewhere = browser()
    signed = sign_in(platform, elsewhere, username=user.username, password=first)
    assert signed.status_code == 302
    thief = copy_of(platform, elsewhere)
    assert signed_in(platform, thief)

    second = "second horse battery"
    changed = here.post(
        url,
        data={"csrf_token": csrf(here, url), "current": first, "new": second, "confirm": second},
        allow_redirects=False,
        timeout=30,
    )
    assert changed.status_code == 302
    assert signed_in(platform, here)  # the browser that changed it stays signed in
    assert not signed_in(platform, elsewhere) and not signed_in(platform, thief)
    again = browser()
    refused = sign_in(platform, again, username=user.username, password=first)
    assert refused.status_code == 401
    assert sign_in(platform, again, username=user.username, password=second).status_code == 302


def test_password_guessing_is_throttled_and_tells_nothing_about_the_user(
    running_platform: Platform, alice: Tenant
) -> None:
    platform = running_platform
    # Alice has a password; a name nobody has is tried the same way.
    here = browser()
    assert sign_in(platform, here, method="token", token=alice.token).status_code == 302
    url = platform.api_url + "/account/password"
    real = "alice horse battery"
    here.post(
        url,
        data={"csrf_token": csrf(here, url), "current": "", "new": real, "confirm": real},
        timeout=30,
    )
    ghost = f"ghost{secrets.token_hex(3)}"
    answers: dict[str, list[tuple[int, str]]] = {}
    for name in (alice.username, ghost):
        guesser = browser()
        tries = []
        for n in range(7):
            answer = sign_in(platform, guesser, username=name, password=f"guess-{n}")
            tries.append((answer.status_code, answer.text.replace(name, "NAME")))
        answers[name] = tries
        assert [status for status, _ in tries] == [401] * 5 + [429] * 2
        assert "Too many failed sign-ins" in tries[-1][1]
        # The right password is refused too while the name is throttled.
        if name == alice.username:
            late = sign_in(platform, guesser, username=name, password=real)
            assert late.status_code == 429 and not signed_in(platform, guesser)

    def without_tokens(text: str) -> str:
        return re.sub(r'value="[^"]{20,}"', 'value=""', text)

    same = [
        [(s, without_tokens(t)) for s, t in answers[alice.username]],
        [(s, without_tokens(t)) for s, t in answers[ghost]],
    ]
    assert same[0] == same[1]  # an existing user and a missing one look alike


# ----------------------------------------------------------------------------- git paths


@pytest.fixture(scope="module")
def hook_app(running_platform: Platform, mallory: Tenant) -> Iterator[str]:
    """Mallory's own app, whose git paths and webhooks she tries to turn against the host."""
    name = create_app(running_platform, mallory, "hook")
    yield name
    destroy(running_platform, mallory, name)


@pytest.mark.parametrize(
    "path",
    [
        "/git/{app}.git/../../../../etc/passwd",
        "/git/{app}.git/..%2f..%2f..%2fetc%2fpasswd",
        "/git/{app}.git/objects/../config",
        "/git/{app}.git/info/../../{app}.git/config",
        "/git/{app}.git/hooks/pre-receive",
        "/git/..git/info/refs",
        "/git/%2e%2e.git/info/refs",
        "/git/{app}.git/HEAD/..",
        "/git/.{app}.git/HEAD",
    ],
)
def test_git_paths_with_dot_dot_are_4xx_and_say_nothing(
    running_platform: Platform, mallory: Tenant, planted: Secrets, hook_app: str, path: str
) -> None:
    platform = running_platform
    with host_unchanged_here(planted):
        status, body = raw_get(platform, path.format(app=hook_app), mallory.token)
    assert 400 <= status < 500, (status, body)
    assert "[core]" not in body and "repositoryformatversion" not in body
    assert_no_leak([body], forbidden(platform, planted))


# ----------------------------------------------------------------------------- webhooks


def loopback_names() -> list[str]:
    """Names this host resolves to its loopback or its own addresses (from /etc/hosts)."""
    names = ["localhost"]
    try:
        socket.getaddrinfo(socket.gethostname(), 80)
        names.append(socket.gethostname())
    except OSError:
        pass
    return names


INWARD_URLS = [
    "http://127.0.0.1:{port}/",
    "http://127.0.0.1/",
    "http://127.1:{port}/",
    "http://2130706433:{port}/",
    "http://0x7f000001:{port}/",
    "http://0177.0.0.1:{port}/",
    "http://[::1]:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1]/",
    "http://0.0.0.0:{port}/",
    "http://[::]:{port}/",
    "https://127.0.0.1:{port}/",
    "http://172.17.0.1:{port}/",  # the container bridge: the host as seen from containers
    "http://10.0.0.1/",
    "http://192.168.1.1/",
]


@pytest.mark.parametrize("url", INWARD_URLS + [f"http://{n}:{{port}}/" for n in loopback_names()])
def test_webhooks_to_the_host_or_its_neighbours_are_refused(
    running_platform: Platform, mallory: Tenant, planted: Secrets, hook_app: str, url: str
) -> None:
    platform = running_platform
    target = url.format(port=platform.api_url.rpartition(":")[2])  # the API itself, say
    answer = platform.api(
        "POST", f"/apps/{hook_app}/webhooks", token=mallory.token, json={"url": target}
    )
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error.startswith("A webhook cannot go to") and error.count(". ") == 0
    listed = platform.api("GET", f"/apps/{hook_app}/webhooks", token=mallory.token)
    assert listed.json() == []
    assert_no_leak([answer.text, listed.text], forbidden(platform, planted))


def test_an_allowed_outside_receiver_is_still_accepted(
    running_platform: Platform, mallory: Tenant, hook_app: str
) -> None:
    # A public address is fine (nothing is sent until an event happens).
    platform = running_platform
    made = platform.api(
        "POST",
        f"/apps/{hook_app}/webhooks",
        token=mallory.token,
        json={"url": "https://93.184.215.14/hook", "events": ["crash"]},
    )
    assert made.status_code == 201, made.text
    path = f"/apps/{hook_app}/webhooks/{made.json()['id']}"
    assert platform.api("DELETE", path, token=mallory.token).status_code == 204


class Redirector:
    """An outside-looking receiver (on the one address the test platform trusts) that answers
    every delivery with a redirect to the host's loopback."""

    def __init__(self, location: str) -> None:
        self.hits = 0
        redirector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                redirector.hits += 1
                self.send_response(307)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((WEBHOOK_RECEIVER_HOST, free_port()), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_receiver_that_redirects_to_the_host_is_not_followed(
    running_platform: Platform, mallory: Tenant, planted: Secrets
) -> None:
    platform = running_platform
    inner = Receiver(free_port())  # what the attacker wants reached: a service on loopback
    outer = Redirector(f"http://127.0.0.1:{inner.port}/admin")
    name = create_app(platform, mallory, "redir")
    try:
        with inner:
            made = platform.api(
                "POST",
                f"/apps/{name}/webhooks",
                token=mallory.token,
                json={"url": f"http://{WEBHOOK_RECEIVER_HOST}:{outer.port}/", "events": ["*"]},
            )
            assert made.status_code == 201, made.text
            # Any deploy makes events (released, deploy_succeeded or deploy_failed) to deliver.
            state, shown = deploy(platform, mallory, name, tarball([("index.html", "hi")]))
            assert state["state"] in ("succeeded", "failed"), state
            deliveries = f"/apps/{name}/webhooks/{made.json()['id']}/deliveries"
            deadline = time.monotonic() + 60
            attempts: list[dict] = []
            while not attempts and time.monotonic() < deadline:
                listed = platform.api("GET", deliveries, token=mallory.token).json()
                attempts = [a for d in listed for a in d["attempt_log"]]
                time.sleep(0.5)
            assert attempts, "the webhook was never attempted"
            assert outer.hits >= 1
            assert attempts[0]["status_code"] == 307 and attempts[0]["error"] == "HTTP 307"
            time.sleep(1)
            assert inner.received == []  # the redirect was not followed
            shown.append(str(listed))
        assert_no_leak(shown, forbidden(platform, planted))
    finally:
        outer.close()
        destroy(platform, mallory, name)
