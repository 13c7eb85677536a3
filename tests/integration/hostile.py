"""Support for the hostile-tenant suite: two users, planted secrets, and a record of the host.

Every attack in ``test_hostile_*.py`` asserts three things:

1. it fails (the deploy is refused or fails, the request gets a 4xx, nothing runs);
2. nothing outside the attacker's own tree changed: :class:`HostRecord` is taken before and
   compared after (``/etc``, ``/root``, ``/tmp``, ``/var/tmp`` and the platform's own files);
3. the attacker learned nothing: :func:`assert_no_leak` looks for the planted secrets and the
   host's own file contents in everything the attacker was shown.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import stat
import tarfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.platform import Platform

RECORDED_TREES = ("/etc",)  # walked whole
# Walked this many levels deep: a home directory may hold toolchains and caches of any size (a
# whole walk took up to half a minute a record), while the secrets the suite plants, and the
# dotfiles an attack would aim at, sit in its first levels.
RECORDED_SHALLOW = (("/root", 3),)
RECORDED_DIRS = ("/tmp", "/var/tmp", "/")  # their entries only: other tests write there too
SMALL = 256 * 1024  # files up to this size are compared by content, bigger ones by size and time
DEPLOY_TIMEOUT = 240


# ----------------------------------------------------------------------------- users


@dataclass(frozen=True)
class Tenant:
    username: str
    token: str


def make_tenant(platform: Platform, prefix: str) -> Tenant:
    """A new non-admin user with a token of its own."""
    name = f"{prefix}{secrets.token_hex(3)}"
    answer = platform.api("POST", "/users", json={"username": name})
    assert answer.status_code == 201, answer.text
    return Tenant(name, answer.json()["token"])


@pytest.fixture(scope="module")
def mallory(running_platform: Platform) -> Tenant:
    """The attacker: an ordinary user."""
    return make_tenant(running_platform, "mallory")


@pytest.fixture(scope="module")
def alice(running_platform: Platform) -> Tenant:
    """The victim: another ordinary user, with data of her own."""
    return make_tenant(running_platform, "alice")


# ----------------------------------------------------------------------------- planted secrets


@dataclass(frozen=True)
class Secrets:
    """Root-only files on the host whose contents no tenant may ever see."""

    text: Path  # one line, the shape of the admin token file
    json: Path  # a JSON object, the shape of a Navi notification
    directory: Path  # a root-only directory holding both
    values: tuple[str, ...]


@pytest.fixture(scope="module")
def planted() -> Iterator[Secrets]:
    root = Path("/root") / f"slipway-hostile-{secrets.token_hex(4)}"
    root.mkdir(mode=0o700)
    line = f"secret-{secrets.token_hex(16)}"
    note = f"secret-{secrets.token_hex(16)}"
    text = root / "token"
    text.write_text(line + "\n")
    text.chmod(0o600)
    data = root / "1-web-oom.json"
    data.write_text(json.dumps({"event": "oom", "process": "web", "detail": note}) + "\n")
    data.chmod(0o600)
    try:
        yield Secrets(text, data, root, (line, note))
    finally:
        for path in (text, data):
            path.unlink(missing_ok=True)
        root.rmdir()


def host_secrets(platform: Platform, planted: Secrets) -> list[str]:
    """Strings that must never reach a tenant: planted secrets, the admin token, host files."""
    values = [*planted.values, platform.admin_token]
    for path in ("/etc/shadow", "/etc/hostname", "/etc/machine-id"):
        try:
            first = Path(path).read_text().splitlines()[0].strip()
        except (OSError, IndexError):
            continue
        if len(first) >= 8:
            values.append(first[:60])
    values.append("root:x:0:0")  # /etc/passwd's first line
    return values


def assert_no_leak(shown: Iterable[str], forbidden: Iterable[str]) -> None:
    """None of the ``forbidden`` strings appears in anything the attacker was ``shown``."""
    seen = "\n".join(shown)
    for value in forbidden:
        assert value not in seen, f"the attacker was shown {value[:20]!r}...:\n{seen[-2000:]}"


# ----------------------------------------------------------------------------- the host's files


@dataclass(frozen=True)
class Entry:
    kind: int
    mode: int
    uid: int
    gid: int
    size: int
    digest: str


class HostRecord:
    """What the host's sensitive files look like: compare two records with :meth:`changes`."""

    def __init__(self, extra: Iterable[Path] = ()) -> None:
        self.entries: dict[str, Entry] = {}
        for tree in RECORDED_TREES:
            self._walk(Path(tree))
        for tree, depth in RECORDED_SHALLOW:
            self._walk(Path(tree), depth)
        for directory in RECORDED_DIRS:
            self._list(Path(directory))
        for path in extra:
            self._walk(path) if path.is_dir() else self._add(path)

    def _walk(self, top: Path, depth: int | None = None) -> None:
        """Every entry under ``top``, or only those at most ``depth`` levels below it."""
        base = len(top.parts)
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if not d.startswith("slipway-test-")]
            listed = [*dirnames, *filenames]
            if depth is not None and len(Path(dirpath).parts) - base + 1 >= depth:
                dirnames[:] = []  # listed, not entered
            for name in listed:
                self._add(Path(dirpath) / name)
        self._add(top)

    def _list(self, directory: Path) -> None:
        with os.scandir(directory) as it:
            for entry in it:
                self._add(Path(entry.path), content=False)
        self._add(directory, content=False)

    def _add(self, path: Path, content: bool = True) -> None:
        try:
            st = path.lstat()
        except OSError:
            return
        digest = ""
        if content and stat.S_ISREG(st.st_mode) and st.st_size <= SMALL:
            try:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                digest = "unreadable"
        elif content and stat.S_ISLNK(st.st_mode):
            digest = os.readlink(path)
        size = st.st_size if not stat.S_ISDIR(st.st_mode) else 0
        self.entries[str(path)] = Entry(
            stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, size, digest
        )

    def changes(self, after: HostRecord, ignore: Iterable[str] = ()) -> list[str]:
        """Paths created, removed or changed between ``self`` and ``after``."""
        skip = tuple(ignore)
        out = []
        for path in sorted(set(self.entries) | set(after.entries)):
            if path.startswith(skip) or _volatile(path):
                continue
            old, new = self.entries.get(path), after.entries.get(path)
            if old != new:
                out.append(f"{path}: {old} -> {new}")
        return out


def _volatile(path: str) -> bool:
    """Files the machine itself changes while tests run (caches, other tests' temp dirs)."""
    name = os.path.basename(path)
    return (
        path.startswith(("/tmp/", "/var/tmp/"))
        and (
            name.startswith(("pytest-", "slipway-test-", "tmp", "slipway-bench", "pymp-"))
            or "." in name
        )
    ) or path.startswith(
        (
            "/root/.cache",
            "/etc/ld.so.cache",
            "/root/.bash_history",
            "/root/.gunicorn/",  # gunicorn's control socket, made and removed by each platform
            "/root/.config/chromium",  # the dashboard tests' browser profile
            "/tmp/runc-process",  # runc's, while Docker starts or execs in a container
            "/tmp/slipway-base-",  # `slipway server images build`'s debootstrap root
        )
    )


@contextmanager
def host_unchanged(ignore: Iterable[str] = ()) -> Iterator[None]:
    """Fail if the host's recorded files differ after the block."""
    before = HostRecord()
    yield
    after = HostRecord()
    changed = before.changes(after, ignore)
    assert not changed, "the host changed:\n" + "\n".join(changed[:20])


# ----------------------------------------------------------------------------- archives


def tarball(entries: list[tuple[str, Any]]) -> bytes:
    """A .tar.gz from ``(name, spec)`` pairs, in order. ``spec`` is file content (str or bytes),
    ``("symlink", target)``, ``("hardlink", target)`` or ``("dir",)``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, spec in entries:
            info = tarfile.TarInfo(name)
            info.mtime = int(time.time())
            if isinstance(spec, tuple) and spec[0] == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, spec[1]
                tar.addfile(info)
            elif isinstance(spec, tuple) and spec[0] == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, spec[1]
                tar.addfile(info)
            elif isinstance(spec, tuple) and spec[0] == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                data = spec.encode() if isinstance(spec, str) else spec
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def create_app(platform: Platform, tenant: Tenant, prefix: str = "h") -> str:
    name = f"{prefix}{secrets.token_hex(3)}"
    answer = platform.api("POST", "/apps", token=tenant.token, json={"name": name})
    assert answer.status_code == 201, answer.text
    return name


def deploy(platform: Platform, tenant: Tenant, app: str, archive: bytes) -> tuple[dict, list[str]]:
    """Upload ``archive`` as ``tenant`` and wait for the deploy to end.

    Returns the final deploy and everything the tenant was shown on the way (answers, log).
    """
    shown: list[str] = []
    answer = platform.api(
        "POST",
        f"/apps/{app}/deploys",
        token=tenant.token,
        data=archive,
        headers={"Content-Type": "application/gzip"},
    )
    shown.append(answer.text)
    if answer.status_code != 202:
        return {"state": "refused", "status": answer.status_code, "error": answer.text}, shown
    deploy_id = answer.json()["id"]
    deadline = time.monotonic() + DEPLOY_TIMEOUT
    state: dict = {}
    while time.monotonic() < deadline:
        state = platform.api("GET", f"/apps/{app}/deploys/{deploy_id}", token=tenant.token).json()
        if state.get("state") in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.5)
    shown.append(str(state))
    log = platform.api("GET", f"/apps/{app}/deploys/{deploy_id}/log", token=tenant.token)
    shown.append(log.text)
    return state, shown


def get(platform: Platform, tenant: Tenant, path: str) -> requests.Response:
    return platform.api("GET", path, token=tenant.token)
