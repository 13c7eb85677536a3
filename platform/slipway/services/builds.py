"""The build step: source into an INPUT volume, the build image's ``build``, OUTPUT into a slug.

Both volumes exist only for the build and are destroyed whatever happens. Build containers and
volumes carry the deploy id, so the reconciler can clean up after a worker that died mid-build.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from slipway import beneath
from slipway.adapters import Adapters
from slipway.config import Settings
from slipway.runtime.base import LABEL_APP, LABEL_KIND, BuildSpec, Limits, Mount
from slipway.services import (
    appjson,
    archives,
    assets,
    java_versions,
    layout,
    php_versions,
    python_versions,
)
from slipway.services.archives import human_size
from slipway.services.errors import SlipwayError, TooLarge
from slipway.services.instances import platform_labels
from slipway.services.runtimes import node
from slipway.services.stacks import build_image, recognise
from slipway.services.untar import NoSpace
from slipway.volumes.base import Volume

LABEL_DEPLOY = "io.slipway.deploy"
FULL_MARGIN = 1024**2  # a volume with less than this left is full for a build's purposes
Log = Callable[[str], None]


class BuildFailed(SlipwayError):
    """The build did not produce a slug; the message says why in one sentence."""


@dataclass(frozen=True)
class BuildOutput:
    slug_path: Path
    stack: str
    process_types: dict[str, str]
    app_json: appjson.AppJson
    node_version: str = ""  # the Node.js release of a node app ("" before releases had one)
    assets_path: Path | None = None  # the output's assets/ directory, packed on its own


def build_volume_names(deploy_id: int) -> tuple[str, str]:
    return f"build-{deploy_id}-input", f"build-{deploy_id}-output"


def build_container_name(deploy_id: int) -> str:
    return f"slipway-build-{deploy_id}"


def build(
    adapters: Adapters,
    settings: Settings,
    app: str,
    deploy_id: int,
    source: Path,
    log: Log,
    config: Mapping[str, str] | None = None,
) -> BuildOutput:
    """Build ``source`` (a checked .tar.gz) for ``app``; raise BuildFailed with the reason.

    Of the app's ``config``, only the vars of BUILD_CONFIG_VARS reach the build."""
    names = build_volume_names(deploy_id)
    try:
        input_volume = _fresh_volume(adapters, names[0], settings.build_volume_size)
        output_volume = _fresh_volume(adapters, names[1], settings.build_volume_size)
        log("-----> Unpacking the source")
        unpack_source(settings, source, input_volume)
        process_types = archives.read_procfile(input_volume.path)
        app_json = read_app_json(input_volume.path, log)
        found, marker = recognise(input_volume.path)  # Unrecognised: before any container
        stack = found.name
        log(f"-----> {stack.capitalize()} app detected ({marker})")
        if stack == "python":
            stack = choose_python(input_volume.path, log)
        if stack in VERSION_CHOOSERS:
            stack = choose_version(stack, input_volume.path, log)
        node_version = ""
        if stack == "node":  # the registry's answer comes before any container starts
            node_version = provide_node(adapters, settings, input_volume.path, log)
        spec = build_spec(settings, app, deploy_id, stack, input_volume, output_volume)
        spec.env |= build_config(config or {})
        if node_version:
            spec.mounts.append(node.mount(settings, node_version))
            spec.env |= node.build_env(node_version, settings.npm_registry)
        _run(adapters, settings, spec, log)
        assets_path = pack_assets(adapters, app, output_volume.path, log)
        slug = adapters.artifacts.new_slug_path(app)
        log("-----> Packing the slug")
        try:
            layout.pack_slug(output_volume.path, slug, (assets.ASSETS,) if assets_path else ())
        except Exception:
            if assets_path:
                adapters.artifacts.delete(assets_path)
            raise
        log(f"       {slug.stat().st_size / 1024**2:.1f} MB")
        return BuildOutput(slug, stack, process_types, app_json, node_version, assets_path)
    finally:
        for name in names:
            _destroy_quietly(adapters, name, log)


def pack_assets(adapters: Adapters, app: str, output: Path, log: Log) -> Path | None:
    """The output's top-level assets/ directory packed into an artifact of its own (it is
    mounted read-only at /mnt/assets, not part of the slug); None without one."""
    if not assets.has_assets(output):
        return None
    path = adapters.artifacts.new_assets_path(app)
    log(f"-----> Packing assets/ (mounted read-only at {assets.MOUNT_POINT}, not in the slug)")
    assets.pack_assets(output, path)
    log(f"       {path.stat().st_size / 1024**2:.1f} MB")
    return path


# The config vars a build gets (Heroku shows a build all of them): the switches build scripts
# read. The others (secrets, database URLs) stay the running app's, out of build tools' reach.
# A change of one takes effect at the next deploy, as on Heroku.
BUILD_CONFIG_VARS = ("DISABLE_COLLECTSTATIC",)


def build_config(config: Mapping[str, str]) -> dict[str, str]:
    """The app's config vars that a build container gets."""
    return {name: config[name] for name in BUILD_CONFIG_VARS if name in config}


def provide_node(adapters: Adapters, settings: Settings, source: Path, log: Log) -> str:
    """The Node.js release the source asks for, on the host (fetched the first time)."""
    registry = node.registry_of(settings, adapters.node_releases)
    try:
        return node.provide(settings, registry, source, log).name
    except node.NodeUnavailable as exc:
        raise BuildFailed(str(exc)) from exc


def choose_python(source: Path, log: Log) -> str:
    """The images' variant of the Python the app gets ("python-3.13"), said in the log, and
    why; PythonUnavailable (before any container) when no image offers it."""
    choice = python_versions.choose(source)
    log(f"-----> Python {choice.offered.line} ({choice.reason})")
    return choice.offered.variant


# Stacks whose version the app chooses among images (python's chooser above came first).
VERSION_CHOOSERS = {"java": java_versions.choose, "php": php_versions.choose}


def choose_version(stack: str, source: Path, log: Log) -> str:
    """The images' variant of the JDK or PHP the app gets ("java-21", "php"), said in the log
    with why; JavaUnavailable or PhpUnavailable (before any container) when none is offered."""
    choice = VERSION_CHOOSERS[stack](source)
    log(f"-----> {choice.offered.language} {choice.offered.line} ({choice.reason})")
    return choice.offered.variant


def unpack_source(settings: Settings, source: Path, volume: Volume) -> None:
    """Unpack the upload into the INPUT volume, every entry mop's from its creation."""
    owner = layout.app_owner()
    try:
        archives.extract_archive(source, volume.path, settings.build_volume_size, owner)
    except NoSpace as exc:
        raise TooLarge(
            f"The source does not fit in the build volume of {human_size(volume.size)} "
            "(too much data or too many files): leave out what the build makes, or raise "
            "SLIPWAY_BUILD_VOLUME_SIZE."
        ) from exc


def read_app_json(source: Path, log: Log) -> appjson.AppJson:
    """The checked app.json of the source (empty without one); its warnings go to the log."""
    parsed = appjson.parse(archives.read_app_json(source))
    for warning in parsed.warnings:
        log(f"       warning: {warning}")
    return parsed


def _fresh_volume(adapters: Adapters, name: str, size: int) -> Volume:
    adapters.volumes.destroy(name)  # a leftover of an earlier attempt of the same deploy
    volume = adapters.volumes.create(name, size)
    # mkfs's lost+found is root's and unreadable to mop: a build copying $INPUT would trip on it.
    with contextlib.suppress(OSError):
        (volume.path / "lost+found").rmdir()
    return volume


def build_spec(
    settings: Settings, app: str, deploy_id: int, stack: str, input_volume: Volume, output: Volume
) -> BuildSpec:
    cache = settings.cache_dir / app
    cache.mkdir(parents=True, exist_ok=True)
    os.chown(cache, layout.MOP_UID, layout.MOP_GID)
    mounts = [
        Mount(input_volume.path, layout.BUILD_INPUT, read_only=True),
        Mount(output.path, layout.BUILD_OUTPUT),
        Mount(cache, layout.BUILD_CACHE),
    ]
    with_ca = settings.ca_bundle.is_file()
    if with_ca:
        mounts.append(Mount(settings.ca_bundle, layout.CA_BUNDLE_TARGET, read_only=True))
    return BuildSpec(
        image=build_image(settings, stack),
        name=build_container_name(deploy_id),
        mounts=mounts,
        env=layout.build_env(app, with_ca_bundle=with_ca),
        limits=Limits(memory=settings.build_memory, pids=settings.build_pids),
        timeout=settings.build_timeout,
        labels={
            **platform_labels(settings),
            LABEL_KIND: "build",
            LABEL_APP: app,
            LABEL_DEPLOY: str(deploy_id),
        },
    )


def _run(adapters: Adapters, settings: Settings, spec: BuildSpec, log: Log) -> None:
    log(f"-----> Building with {spec.image}")
    result = adapters.runtime.run_build(spec, log)
    if result.timed_out:
        raise BuildFailed(
            f"The build took longer than {settings.build_timeout} seconds and was stopped."
        )
    output = Path(spec.mounts[1].source)
    if result.exit_code != 0:
        if _is_full(output):
            raise BuildFailed(
                f"The build filled its output volume ({human_size(settings.build_volume_size)}, "
                "SLIPWAY_BUILD_VOLUME_SIZE) and failed; the log says what it was writing."
            )
        raise BuildFailed(f"The build failed (exit code {result.exit_code}); the log says why.")
    # The OUTPUT volume is mop's: list its top without following anything in it.
    with beneath.opened(beneath.open_root(output)) as root:
        if not any(name != "lost+found" for name in beneath.list_dir(root, "")):
            raise BuildFailed("The build finished but wrote nothing to $OUTPUT.")
    log(f"-----> Build finished in {result.duration:.0f} s")


def _is_full(volume_path: Path) -> bool:
    """Whether a volume has (almost) no blocks or inodes left for mop."""
    try:
        fs = os.statvfs(volume_path)
    except OSError:
        return False
    return fs.f_bavail * fs.f_frsize < FULL_MARGIN or (fs.f_files > 0 and fs.f_favail == 0)


def _destroy_quietly(adapters: Adapters, name: str, log: Log) -> None:
    try:
        adapters.volumes.destroy(name)
    except Exception as exc:  # the reconciler removes volumes no deploy owns
        log(f"       (volume {name} left for the reconciler: {exc})")
