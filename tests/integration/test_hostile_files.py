"""Hostile files on the real platform: uploads and apps that point links at the host.

The upload attacks are the ones that once worked: a chain of links that text checks accept
(``d -> .``, ``e1 -> d/..`` … ``e8 -> e7/..``, which resolves to ``/``) and entries through it,
a Procfile or app.json that is a link to a root-only file, hard links to links. The app attacks
replace ``/mnt/notifications`` or ``/mnt/log/app.log`` inside a running instance with a link to
a root-only host directory or file, then ask the platform for their logs and events.

Each attack asserts three things: it fails, the host is unchanged, the attacker learned nothing.
"""

# The fixtures imported from hostile.py are the tests' parameters of the same name:
# ruff: noqa: F811
from __future__ import annotations

import io
import secrets
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.hostile import (
    Secrets,
    Tenant,
    alice,  # noqa: F401 (a fixture)
    assert_no_leak,
    create_app,
    deploy,
    get,
    host_secrets,
    host_unchanged,
    mallory,  # noqa: F401 (a fixture)
    planted,  # noqa: F401 (a fixture)
    tarball,
)
from tests.integration.platform import Platform

pytestmark = pytest.mark.slow

CHAIN = [("d", ("symlink", ".")), ("e1", ("symlink", "d/.."))] + [
    (f"e{n}", ("symlink", f"e{n - 1}/..")) for n in range(2, 9)
]
ROOT = "e8"  # the chain's last link: "/" on the host, were it ever followed there
SITE = ("index.html", "<h1>hello</h1>\n")
EXT4_BYTES_PER_INODE = 16384  # mke2fs's default ratio: a 2 GB volume has 131,072 inodes
COLLECTOR_PASSES = 4  # notification polls to wait for after the app planted its links


def through_chain(path: Path | str) -> str:
    """The archive name that reaches the host's ``path`` through the chain."""
    return ROOT + str(path)


# What each kind of refusal says: never more than the entry's own name.
NOT_REGULAR = "must be a regular file, not a link"
THROUGH_A_LINK = "writes through a symbolic link or a file"
HARD_LINK = "hard link to a missing file: Procfile"
EARLY = "link pointing outside of it"  # the friendly text check at upload


def attacks(planted: Secrets, tmp_name: str) -> dict[str, tuple[str, list[tuple[str, Any]]]]:
    """Archives that try to read, write or chmod the host's files, and the refusal each gets."""
    token, note, folder = planted.text, planted.json, planted.directory
    in_tmp = through_chain(f"/tmp/{tmp_name}")
    return {
        "procfile-link-through-chain": (
            NOT_REGULAR,
            [*CHAIN, SITE, ("Procfile", ("symlink", through_chain(token)))],
        ),
        "app-json-link-through-chain": (
            NOT_REGULAR,
            [*CHAIN, SITE, ("app.json", ("symlink", through_chain(note)))],
        ),
        "procfile-link-to-etc-passwd": (
            NOT_REGULAR,
            [*CHAIN, SITE, ("Procfile", ("symlink", "e8/etc/passwd"))],
        ),
        "procfile-hard-link-through-chain": (
            HARD_LINK,
            [*CHAIN, SITE, ("Procfile", ("hardlink", through_chain(token)))],
        ),
        "procfile-hard-link-to-a-link": (
            HARD_LINK,
            [
                *CHAIN,
                SITE,
                ("s", ("symlink", through_chain(token))),
                ("Procfile", ("hardlink", "s")),
            ],
        ),
        "procfile-regular-then-replaced-by-a-link": (
            NOT_REGULAR,
            [
                *CHAIN,
                SITE,
                ("Procfile", "web: sh run.sh\n"),
                ("Procfile", ("symlink", through_chain(token))),
            ],
        ),
        "write-a-file-in-host-tmp": (
            THROUGH_A_LINK,
            [*CHAIN, SITE, (in_tmp, "planted by an upload\n")],
        ),
        "make-a-dir-in-host-tmp": (THROUGH_A_LINK, [*CHAIN, SITE, (in_tmp, ("dir",))]),
        "make-a-dir-and-a-file-in-host-tmp": (
            THROUGH_A_LINK,
            [*CHAIN, SITE, (f"{in_tmp}/", ("dir",)), (f"{in_tmp}/f", "x")],
        ),
        "chmod-a-host-dir": (THROUGH_A_LINK, [*CHAIN, SITE, (through_chain(folder), ("dir",))]),
        "overwrite-a-host-file": (
            THROUGH_A_LINK,
            [*CHAIN, SITE, (through_chain(token), "overwritten\n")],
        ),
        "a-file-through-a-link-that-stays-inside": (
            THROUGH_A_LINK,
            [SITE, ("lib", ("dir",)), ("src", ("symlink", "lib")), ("src/a.js", "x")],
        ),
        "a-file-through-a-link-up": (EARLY, [SITE, ("up", ("symlink", "..")), ("up/x", "x")]),
        "absolute-link-then-a-file-through-it": (
            EARLY,
            [SITE, ("abs", ("symlink", "/tmp")), (f"abs/{tmp_name}", "x")],
        ),
        "procfile-absolute-link": (EARLY, [SITE, ("Procfile", ("symlink", str(token)))]),
        "procfile-dotdot-link": (
            EARLY,
            [SITE, ("Procfile", ("symlink", "../" * 12 + str(token)[1:]))],
        ),
    }


ATTACKS = list(attacks(Secrets(Path("/t"), Path("/j"), Path("/d"), ()), "x"))


@pytest.mark.parametrize("name", ATTACKS)
def test_an_upload_cannot_reach_the_host(
    running_platform: Platform,
    mallory: Tenant,
    planted: Secrets,
    name: str,
) -> None:
    tmp_name = f"hostile-{secrets.token_hex(4)}"
    refusal, entries = attacks(planted, tmp_name)[name]
    app = create_app(running_platform, mallory, "up")
    with host_unchanged():
        state, shown = deploy(running_platform, mallory, app, tarball(entries))
    assert state["state"] in ("failed", "refused"), (name, state)
    assert refusal in str(state.get("error")), (name, state)
    assert not Path("/tmp", tmp_name).exists()
    assert planted.text.read_text().strip() == planted.values[0]
    assert (planted.directory.stat().st_mode & 0o777) == 0o700
    assert_no_leak(shown, host_secrets(running_platform, planted))


def test_a_stack_marker_that_is_a_link_is_not_followed(
    running_platform: Platform,
    mallory: Tenant,
    planted: Secrets,
) -> None:
    """A ``requirements.txt`` link to a host file is no Python app: it is never opened."""
    archive = tarball(
        [*CHAIN, SITE, ("requirements.txt", ("symlink", through_chain(planted.text)))]
    )
    app = create_app(running_platform, mallory, "mk")
    with host_unchanged():
        state, shown = deploy(running_platform, mallory, app, archive)
    # Static, since the link counts for nothing; the link itself is followed only in a container.
    assert "Python app detected" not in "\n".join(shown)
    if state["state"] == "succeeded":
        page = running_platform.http_get_app(app, "/requirements.txt")
        shown.append(page.text)
    assert_no_leak(shown, host_secrets(running_platform, planted))


# ----------------------------------------------------------------------------- running apps

# A web process (python3 -m http.server) started by a shell script that first points the
# instance's notifications directory and log at the planted root-only files of the host.
HIJACK = """\
#!/bin/sh
set -e
rm -rf /mnt/notifications
ln -s {directory} /mnt/notifications
rm -f /mnt/log/app.log
ln -s {text} /mnt/log/app.log
echo "links planted"
exec python3 -m http.server "$PORT"
"""

# An app that plants the same links, a notification file that is a link, and then fails its
# start: the platform shows the failed start's log lines in the deploy.
HIJACK_AND_FAIL = """\
#!/bin/sh
ln -s {json} /mnt/notifications/9-web-oom.json
rm -f /mnt/log/app.log
ln -s {text} /mnt/log/app.log
exit 1
"""


def app_archive(script: str, planted: Secrets) -> bytes:
    run = script.format(directory=planted.directory, text=planted.text, json=planted.json)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, body, mode in (
            ("requirements.txt", "", 0o644),
            ("Procfile", "web: sh run.sh\n", 0o644),
            ("run.sh", run, 0o755),
        ):
            data = body.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def seen_by(platform: Platform, tenant: Tenant, app: str) -> list[str]:
    """What the app's owner can ask for: its logs, its events, its processes."""
    shown = []
    for path in (f"/apps/{app}/logs?tail=1000", f"/apps/{app}/events", f"/apps/{app}/processes"):
        answer = get(platform, tenant, path)
        assert answer.status_code == 200, (path, answer.text)
        shown.append(answer.text)
    return shown


def test_an_app_that_links_its_notifications_and_log_to_the_host_gets_nothing(
    running_platform: Platform,
    mallory: Tenant,
    planted: Secrets,
) -> None:
    app = create_app(running_platform, mallory, "hj")
    with host_unchanged():
        state, shown = deploy(running_platform, mallory, app, app_archive(HIJACK, planted))
        assert state["state"] == "succeeded", state
        # The collector polls every few seconds: give it several passes over the links.
        time.sleep(COLLECTOR_PASSES * running_platform.settings.notifications_poll + 1)
        shown += seen_by(running_platform, mallory, app)
    assert planted.json.exists() and planted.text.exists()  # the collector deleted nothing
    events = get(running_platform, mallory, f"/apps/{app}/events").json()
    assert not [e for e in events if e["type"] in ("oom", "crash")], events
    assert_no_leak(shown, host_secrets(running_platform, planted))


def test_an_app_that_fails_its_start_after_planting_links_shows_nothing_of_the_host(
    running_platform: Platform,
    mallory: Tenant,
    planted: Secrets,
) -> None:
    app = create_app(running_platform, mallory, "hf")
    with host_unchanged():
        state, shown = deploy(running_platform, mallory, app, app_archive(HIJACK_AND_FAIL, planted))
        assert state["state"] == "failed", state
        time.sleep(COLLECTOR_PASSES * running_platform.settings.notifications_poll + 1)
        shown += seen_by(running_platform, mallory, app)
    assert planted.json.exists() and planted.text.exists()
    assert_no_leak(shown, host_secrets(running_platform, planted))


def test_a_source_too_big_for_the_build_volume_is_reported_as_such(
    running_platform: Platform,
    mallory: Tenant,
    alice: Tenant,
) -> None:
    """More files than the build volume has inodes: a full volume, not "not a valid archive"."""
    buffer = io.BytesIO()
    inodes = running_platform.settings.build_volume_size // EXT4_BYTES_PER_INODE
    files = inodes + 8_000
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as tar:
        tar.addfile(tarfile.TarInfo("index.html"), io.BytesIO(b""))
        for n in range(files):
            tar.addfile(tarfile.TarInfo(f"many/{n // 1000}/{n}"))
    app = create_app(running_platform, alice, "full")
    state, shown = deploy(running_platform, alice, app, buffer.getvalue())
    assert state["state"] == "failed", state
    assert "does not fit in the build volume" in state["error"], state["error"]
    assert "not a valid .tar.gz" not in "\n".join(shown)


# A build script that makes empty files in $OUTPUT until the volume has no inodes left.
FILL_OUTPUT = """\
const fs = require("fs");
const dir = process.env.OUTPUT + "/fill";
fs.mkdirSync(dir, { recursive: true });
for (let n = 0; ; n++) {
  if (n % 1000 === 0) fs.mkdirSync(dir + "/" + n / 1000);
  fs.writeFileSync(dir + "/" + Math.floor(n / 1000) + "/" + n, "");
}
"""


def test_a_build_that_fills_its_output_volume_is_reported_as_such(
    running_platform: Platform, alice: Tenant
) -> None:
    package = '{"name": "fills", "version": "1.0.0", "scripts": {"build": "node fill.js"}}'
    archive = tarball([("package.json", package), ("fill.js", FILL_OUTPUT), SITE])
    app = create_app(running_platform, alice, "fill")
    state, shown = deploy(running_platform, alice, app, archive)
    assert state["state"] == "failed", state
    assert "The build filled its output volume" in state["error"], state["error"]
