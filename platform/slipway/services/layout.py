"""The contract between the platform and the images: paths, environment and supervisor.conf.

Build containers see the source at ``$INPUT`` (read-only) and write the app to ``$OUTPUT``, which
is ``/mnt/app``: the very path the app runs at, so virtualenvs and native modules that record
absolute paths keep working. Run containers get one volume at ``/mnt`` laid out as the Modulus
standard says: ``app/ home/ log/ notifications/ tmp/ supervisor.conf``.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

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
    """Lay out a fresh instance volume: the /mnt tree, the slug in app/, supervisor.conf."""
    for name in RUN_DIRS:
        (root / name).mkdir(exist_ok=True)
    unpack_slug(slug, root / "app")
    (root / "supervisor.conf").write_text(render_supervisor_conf(process_type, env))
    chown_tree(root)


def pack_slug(output_dir: Path, slug: Path) -> None:
    """Pack a build's OUTPUT into a slug: a zstd tarball, paths relative to the app root.

    GNU tar and zstd do it in a fraction of the time Python's tarfile and gzip take (a Python
    app's virtualenv: about 0.1 s instead of 0.75 s), and every entry is stored as mop's.
    """
    tmp = slug.with_name(slug.name + ".part")
    try:
        _tar(
            ["--create", f"--file={tmp}", f"--directory={output_dir}", "--sort=name"]
            + [f"--owner={MOP_UID}", f"--group={MOP_GID}", "--numeric-owner"]
            + ["--exclude=./lost+found", f"--use-compress-program={SLUG_COMPRESSOR}", "."],
            "pack the slug",
        )
        os.replace(tmp, slug)
    finally:
        tmp.unlink(missing_ok=True)


def unpack_slug(slug: Path, target: Path) -> None:
    """Unpack a slug (zstd, or gzip from older releases) into an empty directory ``target``.

    Slugs are made by :func:`pack_slug` from a directory tree, so their entries are plain
    relative paths; GNU tar still refuses names with ``..`` and creates links that point outside
    only after every file is written, so nothing is ever written through one. Symlinks may point
    anywhere (a virtualenv's bin/python3): they are only followed inside the container.
    """
    target.mkdir(parents=True, exist_ok=True)
    # Reading, tar recognises the compression itself.
    _tar(["--extract", f"--file={slug}", f"--directory={target}", "--no-same-owner"], "unpack")


def _tar(args: list[str], what: str) -> None:
    try:
        done = subprocess.run(
            ["tar", *args], capture_output=True, text=True, timeout=TAR_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise SlugError(f"Could not {what}: tar took longer than {TAR_TIMEOUT} seconds.") from exc
    if done.returncode != 0:
        reason = " ".join(done.stderr.split())[-300:] or f"exit status {done.returncode}"
        raise SlugError(f"Could not {what}: {reason}")


def chown_tree(root: Path, uid: int = MOP_UID, gid: int = MOP_GID) -> None:
    """Give a whole tree to mop (the only user that runs inside containers)."""
    os.chown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, gid)
