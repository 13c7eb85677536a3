"""Node.js releases: npm ranges, the choice and its reason, and the verified host cache.

The registry is a real HTTP server on loopback that speaks the npm registry's protocol (a
packument and tarballs), so the client's requests, hashes and unpacking are the real ones.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from slipway.config import Settings
from slipway.services.errors import Invalid
from slipway.services.runtimes import node, semver
from slipway.services.runtimes.semver import max_satisfying, parse_version, satisfies
from tests.fakes import node_tarball, sha512_integrity

RELEASES = [
    "16.20.2", "18.20.4", "18.20.8", "20.0.0", "20.11.1", "20.19.5", "21.7.3",
    "22.0.0", "22.1.0", "22.12.0", "23.11.1", "24.11.0", "25.2.1",
]  # fmt: skip
VERSIONS = [v for v in map(parse_version, RELEASES) if v]
# As a registry without publication times lists them.
UNDATED = {version: node.Dist(f"{version}.tgz", "sha512-x") for version in VERSIONS}
NOW = datetime(2026, 11, 28, tzinfo=UTC)


def dated(**first_published: str) -> dict[semver.Version, node.Dist]:
    """Releases of the lines named ``v<major>``, each published on the ISO date given."""
    return {
        (int(line[1:]), minor, 0): node.Dist(
            f"{line}.{minor}.tgz",
            "sha512-x",
            datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(days=30 * minor),
        )
        for line, day in first_published.items()
        for minor in (0, 1)
    }


def newest(wanted: str) -> str | None:
    found = max_satisfying(VERSIONS, wanted)
    return ".".join(map(str, found)) if found else None


# -- ranges -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [
        ("18", "18.20.8"),
        ("18.x", "18.20.8"),
        ("18.20", "18.20.8"),
        ("18.20.4", "18.20.4"),
        ("=18.20.4", "18.20.4"),
        ("v18.20.4", "18.20.4"),
        (">=20 <23", "22.12.0"),
        (">= 20 < 23", "22.12.0"),
        (">=20.0.0 <23.0.0-0", "22.12.0"),
        ("^22.1", "22.12.0"),
        ("^22.1.0", "22.12.0"),
        ("~22.1", "22.1.0"),
        ("~22.0.0", "22.0.0"),
        ("~22", "22.12.0"),
        ("22.x", "22.12.0"),
        ("22.X.x", "22.12.0"),
        ("*", "25.2.1"),
        ("x", "25.2.1"),
        ("", "25.2.1"),
        (">=18", "25.2.1"),
        (">20", "25.2.1"),
        (">22.1 <23", "22.12.0"),
        (">22.12.0 <24", "23.11.1"),
        ("<=20", "20.19.5"),
        ("<=20.11", "20.11.1"),
        ("<20.11", "20.0.0"),
        ("<20", "18.20.8"),
        ("16 || 18", "18.20.8"),
        ("^16.10 || ^18.12 || >=20 <21", "20.19.5"),
        ("20 - 22.0", "22.0.0"),
        ("18.20.4 - 20", "20.19.5"),
        (">=99", None),
        ("^12", None),
        ("<16", None),
        ("<*", None),
        ("20.1.2", None),
    ],
)
def test_the_newest_release_in_the_range(wanted: str, expected: str | None) -> None:
    assert newest(wanted) == expected


@pytest.mark.parametrize(
    ("version", "wanted", "holds"),
    [
        ((0, 2, 5), "^0.2.3", True),
        ((0, 3, 0), "^0.2.3", False),
        ((0, 0, 3), "^0.0.3", True),
        ((0, 0, 4), "^0.0.3", False),
        ((0, 0, 9), "^0.0", True),
        ((0, 1, 0), "^0.0", False),
        ((0, 9, 0), "^0.x", True),
        ((1, 0, 0), "^0.x", False),
        ((1, 2, 3), "~>1.2", True),
    ],
)
def test_caret_and_tilde_below_one(version: semver.Version, wanted: str, holds: bool) -> None:
    assert satisfies(version, wanted) is holds


@pytest.mark.parametrize("wanted", ["node 20", "latest", ">=20 <", "20.1.2.3", "^^20", "01"])
def test_what_is_not_a_range_is_invalid(wanted: str) -> None:
    with pytest.raises(Invalid, match="is not a semver range"):
        max_satisfying(VERSIONS, wanted)


def test_prereleases_are_not_releases() -> None:
    assert parse_version("22.0.0-rc.1") is None
    assert parse_version("4.2.1-pkg1") is None
    assert parse_version("v22.1.0") == (22, 1, 0)


# -- the choice ---------------------------------------------------------------------------------


def test_without_engines_node_the_newest_lts_line() -> None:
    choice = node.choose(None, UNDATED)
    assert choice.name == "24.11.0"
    assert choice.reason == "no engines.node: the newest LTS line, 24"


def test_lts_star_is_the_newest_lts_line() -> None:
    choice = node.choose("lts/*", UNDATED)
    assert choice.name == "24.11.0"
    assert choice.reason == "engines.node lts/* in package.json: the newest LTS line, 24"


def test_the_reason_names_the_range() -> None:
    assert node.choose("^20", UNDATED).reason == "engines.node ^20 in package.json"
    assert node.choose("^20", UNDATED).name == "20.19.5"


def test_a_range_no_release_satisfies_lists_the_newest_of_each_line() -> None:
    with pytest.raises(node.NodeUnavailable) as caught:
        node.choose(">=99", UNDATED)
    assert str(caught.value) == (
        "No Node.js release satisfies engines.node '>=99' in package.json; the newest of each "
        "line: 16.20.2, 18.20.8, 20.19.5, 21.7.3, 22.12.0, 23.11.1, 24.11.0, 25.2.1."
    )


def test_lts_lines_are_even_from_4_and_followed_by_their_odd_line() -> None:
    releases = {(major, 0, 0): node.Dist("t", "i") for major in (0, 3, 4, 5, 22, 23, 24, 26)}
    assert node.lts_lines(releases, NOW) == {4, 22}  # no 25 or 27 yet, and no dates


def test_an_even_line_released_in_april_is_lts_from_october() -> None:
    releases = dated(v24="2025-05-06", v25="2025-10-15", v26="2026-04-22")
    # Without 25, 24 is LTS six months after its first release; with 25, at once.
    before = {v: d for v, d in releases.items() if v[0] != 25}
    assert node.lts_lines(before, datetime(2025, 9, 1, tzinfo=UTC)) == set()
    assert node.lts_lines(before, datetime(2025, 11, 10, tzinfo=UTC)) == {24}
    assert node.choose(None, releases, datetime(2026, 5, 1, tzinfo=UTC)).name == "24.1.0"
    # Six months after its first release, 26 is LTS although no 27 follows it.
    late = node.choose(None, releases, datetime(2026, 10, 23, tzinfo=UTC))
    assert (late.name, late.reason) == ("26.1.0", "no engines.node: the newest LTS line, 26")


def test_a_line_with_no_lts_yet_is_an_error() -> None:
    releases = dated(v26="2026-10-01")
    with pytest.raises(node.NodeUnavailable, match="lists no Node.js LTS release"):
        node.choose(None, releases, NOW)


def test_the_registry_time_is_read_and_a_bad_one_ignored() -> None:
    dists = node._dists(
        {"24.0.0": {"dist": {"tarball": "a", "integrity": "b"}}, "25.0.0": {"dist": {}}},
        {"24.0.0": "2025-05-06T12:00:00.000Z", "25.0.0": "2025-10-15"},
    )
    assert dists == {(24, 0, 0): node.Dist("a", "b", datetime(2025, 5, 6, 12, tzinfo=UTC))}
    assert node._timestamp("yesterday") is None
    assert node._timestamp(7) is None


def test_engines_node_is_read_from_package_json(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text(json.dumps({"engines": {"node": " >=20\n <23 "}}))
    assert node.engines_node(tmp_path) == ">=20 <23"
    (tmp_path / "package.json").write_text(json.dumps({"engines": {"npm": "10"}}))
    assert node.engines_node(tmp_path) is None
    (tmp_path / "package.json").write_text(json.dumps({"engines": {"node": 20}}))
    with pytest.raises(Invalid, match="engines.node in package.json must be a string"):
        node.engines_node(tmp_path)


def test_a_package_json_link_is_not_followed(tmp_path: Path) -> None:
    (tmp_path / "elsewhere.json").write_text(json.dumps({"engines": {"node": "20"}}))
    (tmp_path / "package.json").symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(Invalid, match="must be a regular file"):
        node.engines_node(tmp_path)


# -- the registry and the host's cache ----------------------------------------------------------


@dataclass
class FakeRegistryState:
    tarballs: dict[str, bytes] = field(default_factory=dict)
    integrity: dict[str, str] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def registry() -> Iterator[tuple[node.Registry, FakeRegistryState]]:
    state = FakeRegistryState()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(self.path)
            base = f"http://127.0.0.1:{self.server.server_address[1]}"
            if self.path == f"/{node.PACKAGE}":
                body = json.dumps(
                    {
                        "name": node.PACKAGE,
                        "versions": {
                            version: {
                                "dist": {
                                    "tarball": f"{base}/t/{version}.tgz",
                                    "integrity": state.integrity[version],
                                }
                            }
                            for version in state.tarballs
                        },
                        # Long ago: every even line here counts as LTS.
                        "time": {version: "2024-04-24T12:00:00.000Z" for version in state.tarballs},
                    }
                ).encode()
            elif self.path.startswith("/t/"):
                body = state.tarballs[self.path[3:].removesuffix(".tgz")]
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield node.Registry(f"http://127.0.0.1:{server.server_address[1]}/"), state
    finally:
        server.shutdown()
        server.server_close()


def publish(state: FakeRegistryState, version: str, tampered: bool = False) -> None:
    data = node_tarball(version)
    state.tarballs[version] = data + b"tampered" if tampered else data
    state.integrity[version] = sha512_integrity(data)


def app_source(tmp_path: Path, engines: str | None) -> Path:
    source = tmp_path / "source"
    source.mkdir(exist_ok=True)
    package = {"name": "app"} | ({"engines": {"node": engines}} if engines else {})
    (source / "package.json").write_text(json.dumps(package))
    return source


def test_a_release_is_fetched_verified_and_unpacked_once(
    settings: Settings, registry: tuple[node.Registry, FakeRegistryState], tmp_path: Path
) -> None:
    client, state = registry
    publish(state, "20.19.5")
    publish(state, "22.12.0")
    lines: list[str] = []
    choice = node.provide(settings, client, app_source(tmp_path, "20"), lines.append)
    assert choice.name == "20.19.5"
    assert lines == [
        "-----> Node.js 20.19.5 (engines.node 20 in package.json)",
        "       fetching Node.js 20.19.5 from the npm registry (once for this host)",
    ]
    home = settings.data_dir / "runtimes" / "node" / "20.19.5"
    assert (home / "bin" / "node").read_text() == "#!/bin/sh\necho v20.19.5\n"
    assert (home / "bin" / "node").stat().st_mode & 0o777 == 0o755
    assert (home / "include" / "node" / "node.h").is_file()
    assert home.stat().st_mode & 0o777 == 0o755
    assert sorted(p.name for p in home.parent.iterdir()) == ["20.19.5"]  # no leftovers

    lines.clear()
    state.requests.clear()
    node.provide(settings, client, app_source(tmp_path, "20"), lines.append)
    assert lines == ["-----> Node.js 20.19.5 (engines.node 20 in package.json)"]
    assert state.requests == [
        f"/{node.PACKAGE}"
    ]  # the list only: the tarball is never fetched again


def test_a_tampered_tarball_is_refused_and_nothing_is_cached(
    settings: Settings, registry: tuple[node.Registry, FakeRegistryState], tmp_path: Path
) -> None:
    client, state = registry
    publish(state, "22.12.0", tampered=True)
    with pytest.raises(node.NodeUnavailable) as caught:
        node.provide(settings, client, app_source(tmp_path, None), lambda _: None)
    assert str(caught.value).startswith(
        "The Node.js 22.12.0 tarball does not match its integrity hash in the npm registry "
        f"(expected {state.integrity['22.12.0']}, got sha512-"
    )
    assert str(caught.value).endswith("; it was refused.")
    assert list((settings.data_dir / "runtimes" / "node").iterdir()) == []


def test_an_unreachable_registry_names_its_error(settings: Settings, tmp_path: Path) -> None:
    client = node.Registry("http://127.0.0.1:9/")  # discard: nothing listens
    with pytest.raises(node.NodeUnavailable) as caught:
        node.provide(settings, client, app_source(tmp_path, "22"), lambda _: None)
    message = str(caught.value)
    assert message.startswith(
        "The list of Node.js releases could not be read from the npm registry: "
    )
    assert "Connection refused" in message or "Max retries" in message


def test_a_range_no_release_satisfies_fetches_nothing(
    settings: Settings, registry: tuple[node.Registry, FakeRegistryState], tmp_path: Path
) -> None:
    client, state = registry
    publish(state, "22.12.0")
    with pytest.raises(node.NodeUnavailable, match="newest of each line: 22.12.0"):
        node.provide(settings, client, app_source(tmp_path, ">=99"), lambda _: None)
    assert state.requests == [f"/{node.PACKAGE}"]
    assert not (settings.data_dir / "runtimes" / "node").exists()


def test_containers_get_the_release_read_only_and_its_bin_first(settings: Settings) -> None:
    mount = node.mount(settings, "22.12.0")
    assert (mount.source, mount.target, mount.read_only) == (
        settings.data_dir / "runtimes" / "node" / "22.12.0",
        "/opt/node",
        True,
    )
    env = node.build_env("22.12.0")
    assert env["PATH"].split(":")[0] == "/opt/node/bin"
    assert env["SLIPWAY_NODE_VERSION"] == "22.12.0"
    assert "COREPACK_NPM_REGISTRY" not in env
    # npm and corepack (pnpm, yarn) use the platform's registry.
    mirrored = node.build_env("22.12.0", "http://npm.example/")
    assert mirrored["npm_config_registry"] == "http://npm.example/"
    assert mirrored["COREPACK_NPM_REGISTRY"] == "http://npm.example"
    assert node.path(["/mnt/app/node_modules/.bin"]).startswith(
        "/mnt/app/node_modules/.bin:/opt/node/bin:"
    )


def test_ensure_fetches_a_release_only_when_the_host_lacks_it(
    settings: Settings, registry: tuple[node.Registry, FakeRegistryState]
) -> None:
    client, state = registry
    publish(state, "22.12.0")
    node.ensure(settings, client, "22.12.0")  # a new host: fetched and verified
    assert (node.release_dir(settings, "22.12.0") / "bin" / "node").is_file()
    state.requests.clear()
    node.ensure(settings, client, "22.12.0")
    assert state.requests == []
    with pytest.raises(node.NodeUnavailable, match=r"Node.js 21.0.0 is no longer published"):
        node.ensure(settings, client, "21.0.0")
