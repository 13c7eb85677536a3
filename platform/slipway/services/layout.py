"""The contract between the platform and the images: paths, environment and supervisor.conf.

Build containers see the source at ``$INPUT`` (read-only) and write the app to ``$OUTPUT``, which
is ``/mnt/app``: the very path the app runs at, so virtualenvs and native modules that record
absolute paths keep working. Run containers get one volume at ``/mnt`` laid out as the Modulus
standard says: ``app/ home/ log/ notifications/ tmp/ supervisor.conf``.
"""

from __future__ import annotations

import os
import shlex
import tarfile
from pathlib import Path

from slipway.services.untar import safe_extract

MOP_UID = 1000
MOP_GID = 1000

BUILD_INPUT = "/mnt/input"
BUILD_OUTPUT = "/mnt/app"
BUILD_CACHE = "/mnt/cache"
CA_BUNDLE_TARGET = "/etc/ssl/certs/slipway-host-ca.crt"

RUN_ROOT = "/mnt"
APP_PORT = 5000  # PORT inside every instance; the host side is a free port on 127.0.0.1
LOG_FILE = "/mnt/log/app.log"
RUN_DIRS = ("app", "home", "log", "notifications", "tmp")


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
    with tarfile.open(slug) as tar:
        # Symlinks may point anywhere (a virtualenv's bin/python3): they are only followed
        # inside the container, where /mnt/app is the app; every entry's own path is checked.
        safe_extract(tar, root / "app", symlinks_anywhere=True)
    (root / "supervisor.conf").write_text(render_supervisor_conf(process_type, env))
    chown_tree(root)


def pack_slug(output_dir: Path, slug: Path) -> None:
    """Pack a build's OUTPUT into a slug (a gzipped tarball, paths relative to the app root)."""
    tmp = slug.with_name(slug.name + ".part")
    with tarfile.open(tmp, "w:gz", compresslevel=1) as tar:
        for entry in sorted(output_dir.iterdir()):
            if entry.name == "lost+found":
                continue
            tar.add(entry, arcname=entry.name)
    os.replace(tmp, slug)


def chown_tree(root: Path, uid: int = MOP_UID, gid: int = MOP_GID) -> None:
    """Give a whole tree to mop (the only user that runs inside containers)."""
    os.chown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, gid)
