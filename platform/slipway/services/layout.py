"""The contract between the platform and the images: paths, environment and supervisor.conf.

Build containers see the source at ``$INPUT`` (read-only) and write the app to ``$OUTPUT``, which
is ``/mnt/app``: the very path the app runs at, so virtualenvs and native modules that record
absolute paths keep working. Run containers get one volume at ``/mnt`` laid out as the Modulus
standard says: ``app/ home/ log/ notifications/ tmp/ supervisor.conf``.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
from pathlib import Path
from typing import IO, Any

from slipway import beneath

# mop's uid and gid (the setting SLIPWAY_APP_UID), named here too for the services
from slipway.appuser import MOP_GID as MOP_GID
from slipway.appuser import MOP_UID as MOP_UID
from slipway.services.errors import SlipwayError

BUILD_INPUT = "/mnt/input"
BUILD_OUTPUT = "/mnt/app"
BUILD_CACHE = "/mnt/cache"
CA_BUNDLE_TARGET = "/etc/ssl/certs/slipway-host-ca.crt"

RUN_ROOT = "/mnt"
APP_PORT = 5000  # PORT inside every instance; the host side is a free port on 127.0.0.1
LOG_FILE = "/mnt/log/app.log"
RUN_DIRS = ("app", "home", "log", "notifications", "tmp")
SLUG_SUFFIX = ".tar.zst"
SLUG_COMPRESSOR = "zstd --fast=1 -T0 -q"  # fast beats small here: on every deploy's path
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC = b"\x1f\x8b"
SUPERVISOR_CONF = "supervisor.conf"
TAR_TIMEOUT = 600  # seconds; packing or unpacking a 2 GB slug takes well under a minute


class SlugError(SlipwayError):
    """A slug could not be packed or unpacked; the message says why."""


def build_env(app: str, with_ca_bundle: bool = True) -> dict[str, str]:
    """The environment of a build container."""
    env = {
        "APP": app,
        "INPUT": BUILD_INPUT,
        "OUTPUT": BUILD_OUTPUT,
        "INPUT_DIR": BUILD_INPUT,
        "OUTPUT_DIR": BUILD_OUTPUT,
        "CACHE": BUILD_CACHE,
        "HOME": f"{BUILD_CACHE}/home",
        "TMPDIR": "/tmp",
        "TEMP_DIR": "/tmp",
    }
    if with_ca_bundle:
        env |= {
            "SSL_CERT_FILE": CA_BUNDLE_TARGET,
            "NODE_EXTRA_CA_CERTS": CA_BUNDLE_TARGET,
            "PIP_CERT": CA_BUNDLE_TARGET,
            "REQUESTS_CA_BUNDLE": CA_BUNDLE_TARGET,
        }
    return env


def run_env(config: dict[str, str], app: str, instance: str, process_type: str) -> dict[str, str]:
    """The environment of a process: the app's config vars, then what the platform sets."""
    return {
        **config,
        "PORT": str(APP_PORT),
        "HOME": f"{RUN_ROOT}/home",
        "TEMP_DIR": f"{RUN_ROOT}/tmp",
        "TMPDIR": f"{RUN_ROOT}/tmp",
        "SLIPWAY_APP": app,
        "SLIPWAY_INSTANCE": instance,
        "SLIPWAY_PROCESS_TYPE": process_type,
    }


def _supervisor_value(value: str) -> str:
    # supervisord expands %(name)s in values, so a literal % must be doubled; quote the rest.
    quoted = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return quoted.replace("%", "%%")


def render_supervisor_conf(process_type: str, env: dict[str, str]) -> str:
    """The per-instance ``/mnt/supervisor.conf``: one program, ``start <type>``, logs to app.log."""
    environment = ",".join(f"{k}={_supervisor_value(v)}" for k, v in sorted(env.items()))
    command = shlex.join(["start", process_type])
    return "\n".join(
        [
            f"[program:{process_type}]",
            f"command={command}",
            f"directory={RUN_ROOT}/app",
            f"environment={environment}",
            "autostart=true",
            "autorestart=true",
            "startsecs=1",
            "startretries=3",
            "stopsignal=TERM",
            "stopwaitsecs=10",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={LOG_FILE}",
            "stdout_logfile_maxbytes=10MB",
            "stdout_logfile_backups=3",
            "",
        ]
    )


def prepare_instance_volume(root: Path, slug: Path, process_type: str, env: dict[str, str]) -> None:
    """Lay out a fresh instance volume: the /mnt tree, the slug in app/, supervisor.conf.

    Everything is mop's from its creation, so no walk over the tree is needed afterwards; root
    makes only the top directories and supervisor.conf, beneath the volume with no link followed.
    """
    owner = app_owner()
    conf = render_supervisor_conf(process_type, env).encode()
    with beneath.opened(beneath.open_root(root)) as root_fd:
        if owner is not None:
            os.fchown(root_fd, *owner)
        for name in RUN_DIRS:
            os.close(beneath.make_dirs(root_fd, name, 0o755, owner))
        with beneath.opened(beneath.open_dir(root_fd, "app")) as app_fd:
            unpack_slug_into(slug, app_fd, owner)
        with contextlib.suppress(FileNotFoundError):  # a volume reused after a failed start
            beneath.unlink(root_fd, SUPERVISOR_CONF)
        beneath.write_new(root_fd, SUPERVISOR_CONF, conf, 0o644, owner)


def pack_slug(output_dir: Path, slug: Path, leave_out: tuple[str, ...] = ()) -> None:
    """Pack a build's OUTPUT into a slug: a zstd tarball, paths relative to the app root.

    GNU tar and zstd do it in a fraction of the time Python's tarfile and gzip take (a Python
    app's virtualenv: about 0.1 s instead of 0.75 s), and every entry is stored as mop's. The
    tree is mop's, so tar reads it as mop (what it can read, the app could already); root only
    opens the slug file it writes into. ``leave_out`` names top-level entries kept out of it
    (the assets directory, packed on its own).
    """
    with beneath.opened(beneath.open_root(output_dir)) as tree:
        pack_tree(tree, slug, "pack the slug", ("lost+found", *leave_out))


def pack_tree(tree_fd: int, target: Path, what: str, leave_out: tuple[str, ...] = ()) -> None:
    """Pack the directory ``tree_fd`` (mop's) into the zstd tarball ``target`` as a slug is
    packed: as mop, every entry stored as mop's, written under a temporary name."""
    tmp = target.with_name(target.name + ".part")
    tmp.unlink(missing_ok=True)  # a leftover of a worker that died while packing
    try:
        with tmp.open("xb") as out:
            _tar_as_app(
                ["--create", "--file=-", "--sort=name"]
                + [f"--owner={MOP_UID}", f"--group={MOP_GID}", "--numeric-owner"]
                + [f"--exclude=./{name}" for name in leave_out]
                + [f"--use-compress-program={SLUG_COMPRESSOR}", "."],
                what,
                tree_fd,
                app_owner(),
                stdin=subprocess.DEVNULL,
                stdout=out,
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def unpack_slug(slug: Path, target: Path, what: str = "unpack the slug") -> None:
    """Unpack a slug into ``target``, a directory the platform made (created if missing)."""
    owner = app_owner()
    target.mkdir(parents=True, exist_ok=True)
    with beneath.opened(beneath.open_root(target)) as target_fd:
        if owner is not None:
            os.fchown(target_fd, *owner)
        unpack_slug_into(slug, target_fd, owner, what)


def unpack_slug_into(
    slug: Path, target_fd: int, owner: tuple[int, int] | None, what: str = "unpack the slug"
) -> None:
    """Unpack a slug (zstd, or gzip from older releases) into the directory ``target_fd``.

    A slug is the app's own output, so GNU tar unpacks it as the app's user (``owner``; None: as
    this unprivileged process), in a directory that user owns: its files come out mop's with no
    chown walk, and it can write nothing mop could not write from inside the container. tar
    also refuses names with ``..`` and makes links that point outside only after every file is
    written. Symlinks may point anywhere (a virtualenv's bin/python3): they are only followed
    inside the container.
    """
    with slug.open("rb") as source:
        magic = os.pread(source.fileno(), 4, 0)
        compression = (
            ["--zstd"] if magic == ZSTD_MAGIC else ["--gzip"] if magic[:2] == GZIP_MAGIC else []
        )
        _tar_as_app(
            ["--extract", "--file=-", *compression, "--no-same-owner", "--preserve-permissions"],
            what,
            target_fd,
            owner,
            stdin=source,
            stdout=subprocess.DEVNULL,
        )


def app_owner() -> tuple[int, int] | None:
    """mop's (uid, gid) for what the platform creates in app trees; None when not root.

    Unprivileged (a developer's ``directory`` volumes) nothing can be given away, and everything
    is the developer's already.
    """
    return (MOP_UID, MOP_GID) if os.geteuid() == 0 else None


def inside_as(directory_fd: int, owner: tuple[int, int] | None) -> dict[str, Any]:
    """``subprocess`` options that run a child as ``owner`` (None: as this process) inside the
    directory ``directory_fd``.

    The child changes into the directory through its own descriptor (``/proc/self/fd/N``,
    before it drops root), so no path of the tree is looked up.
    """
    switch: dict[str, Any] = {}
    if owner is not None:
        switch = {"user": owner[0], "group": owner[1], "extra_groups": []}
    return {
        "cwd": f"/proc/self/fd/{directory_fd}",
        "pass_fds": (directory_fd,),
        "umask": 0o022,
        **switch,
    }


def _tar_as_app(
    args: list[str],
    what: str,
    directory_fd: int,
    owner: tuple[int, int] | None,
    stdin: IO[bytes] | int,
    stdout: IO[bytes] | int,
) -> None:
    """Run GNU tar as ``owner`` (None: as this process) inside the directory ``directory_fd``
    (see :func:`inside_as`); tar's stdin or stdout is the slug file root opened."""
    try:
        done = subprocess.run(
            ["tar", *args],
            stdin=stdin,
            stdout=stdout,
            stderr=subprocess.PIPE,
            timeout=TAR_TIMEOUT,
            check=False,
            **inside_as(directory_fd, owner),
        )
    except subprocess.TimeoutExpired as exc:
        raise SlugError(f"Could not {what}: tar took longer than {TAR_TIMEOUT} seconds.") from exc
    if done.returncode != 0:
        stderr = done.stderr.decode(errors="replace")
        reason = " ".join(stderr.split())[-300:] or f"exit status {done.returncode}"
        if "No space left on device" in stderr or "Disk quota exceeded" in stderr:
            where = "the instance volume" if what == "unpack the slug" else "the platform's disk"
            raise SlugError(f"Could not {what}: {where} is full ({reason}).")
        raise SlugError(f"Could not {what}: {reason}")


def chown_tree(root: Path, uid: int = MOP_UID, gid: int = MOP_GID) -> None:
    """Give a whole tree to mop. Only for trees root made itself (tests): never an app's tree."""
    os.chown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, gid)
