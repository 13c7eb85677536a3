"""The router: a real nginx, run by the platform itself with a configuration it generates.

Everything lives under ``settings.nginx_dir``: the main ``nginx.conf``, the generated
``sites.conf``, the pid file, logs and temp paths. A new configuration is rendered to a temporary
file, checked with ``nginx -t``, renamed into place and only then is nginx reloaded, so a
configuration nginx refuses never replaces the one that is serving.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import jinja2

from slipway.config import Settings
from slipway.pidfile import live_pid
from slipway.router.base import Route
from slipway.router.nat import UPSTREAM_KEEPALIVE_TIME, NatError, NatSwitch
from slipway.services.errors import SlipwayError

APP_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
DOMAIN = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")
WAKE_ADDRESS = re.compile(r"^([a-zA-Z0-9.-]+|\[[0-9a-fA-F:.]+\]):[0-9]{1,5}$")
MAX_BODY_SIZE = "100m"
COMMAND_TIMEOUT = 30

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("slipway", "router"),
    autoescape=False,  # nginx configuration, not HTML
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


class RouterError(SlipwayError):
    """nginx refused the configuration or could not be started or reloaded."""


def nginx_binary() -> str:
    """The nginx executable (Debian installs it in /usr/sbin, often not on a user's PATH)."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise RouterError("nginx is not installed; install the Debian package nginx.")
    return found


def traffic_log_path(settings: Settings) -> Path:
    """nginx's log of proxied requests, one ``<unix time> up_<app>`` line each (the sleeper
    reads it to tell which apps are idle)."""
    return settings.nginx_dir / "logs" / "traffic.log"


def no_instance_message(app: str) -> str:
    return f"The app {app} has no running instance right now; try again in a moment.\\n"


def render_sites(
    routes: list[Route],
    listen: str,
    domain: str,
    servers: Mapping[str, list[str]] | None = None,
    wake: str | None = None,
) -> str:
    """The whole sites configuration for these routes (names are checked: they go into nginx).

    ``servers`` gives each app's upstream addresses (the NAT switch's front addresses); by
    default they are the instances' ports on 127.0.0.1. ``wake`` is the wake service's
    ``host:port``, always its real address (never a front: it is no instance); without it no
    app is wakeable.
    """
    if servers is None:
        servers = direct_servers(routes)
    if not DOMAIN.match(domain):
        raise RouterError(f"The domain {domain!r} is not a valid host name.")
    if wake is not None and not WAKE_ADDRESS.fullmatch(wake):
        raise RouterError(f"SLIPWAY_WAKE_BIND is {wake!r}; use host:port, like 127.0.0.1:7002.")
    for route in routes:
        if not APP_NAME.match(route.app):
            raise RouterError(f"The app name {route.app!r} cannot be routed (not a DNS label).")
        bad = [port for port in route.upstreams if not 0 < port < 65536]
        if bad:
            raise RouterError(
                f"The new routing configuration is invalid, the old one stays in place: "
                f"{route.app} has the port {bad[0]}, which is not a TCP port."
            )
    return _templates.get_template("sites.conf.j2").render(
        routes=sorted(routes, key=lambda r: r.app),
        listen=listen,
        domain=domain,
        domain_regex=re.escape(domain),
        no_instance_message=no_instance_message,
        upstreams={route.app: upstream_servers(route, servers, wake) for route in routes},
        keepalive_time=UPSTREAM_KEEPALIVE_TIME,
    )


def upstream_servers(route: Route, servers: Mapping[str, list[str]], wake: str | None) -> list[str]:
    """The ``server`` lines of the app's upstream; none: the app answers 503.

    A wakeable app that sleeps or has no live instance goes to the wake service alone; one with
    live instances has the wake service as backup, so a request that finds every instance gone
    (a vanished container, a closed port) wakes the app instead of failing.
    """
    wakes = wake is not None and route.wakeable
    if wakes and (route.sleeping or not route.upstreams):
        return [f"{wake}"]
    instances = [f"{server} max_fails=1 fail_timeout=2s" for server in servers.get(route.app, [])]
    if instances and wakes:
        return [*instances, f"{wake} backup"]
    return instances


def direct_servers(routes: list[Route]) -> dict[str, list[str]]:
    """Each app's instances as nginx upstream servers: ``127.0.0.1:<host port>``."""
    return {route.app: [f"127.0.0.1:{port}" for port in route.upstreams] for route in routes}


class NginxRouter:
    """:class:`slipway.router.base.Router` on a real nginx."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dir = settings.nginx_dir
        self.main_conf = self.dir / "nginx.conf"
        self.sites_conf = self.dir / "sites.conf"
        self.pid_file = self.dir / "nginx.pid"
        self.logs_dir = self.dir / "logs"
        self.traffic_log = traffic_log_path(settings)
        self.temp_dir = self.dir / "tmp"
        if settings.router_switch not in ("nat", "reload"):
            raise RouterError(
                f"SLIPWAY_ROUTER_SWITCH is {settings.router_switch!r}; use 'nat' or 'reload'."
            )
        self.nat = (
            NatSwitch(settings.platform_id, self.dir) if settings.router_switch == "nat" else None
        )

    # ----- configuration -------------------------------------------------------------------

    def render_main(self, sites_file: Path) -> str:
        return _templates.get_template("nginx.conf.j2").render(
            pid_file=self.pid_file,
            logs_dir=self.logs_dir,
            traffic_log=self.traffic_log,
            temp_dir=self.temp_dir,
            sites_file=sites_file,
            max_body_size=MAX_BODY_SIZE,
        )

    def ensure_config(self) -> None:
        """Write the main configuration, and an empty routing table if there is none yet.

        With the NAT switch, also check that the NAT table can be used (a clear error if not).
        """
        with self._locked():
            if self.nat is not None:
                try:
                    self.nat.check_usable()
                    self.nat.ensure_hook()
                except NatError as exc:
                    raise RouterError(str(exc)) from exc
            self._write_main()
            if not self.sites_conf.exists():
                self._swap_in(render_sites([], self.settings.router_bind, self.settings.domain))

    def apply(self, routes: list[Route]) -> None:
        """Route to these instances; a configuration nginx refuses never replaces the old one.

        With the NAT switch, a change of instances alone rewrites the NAT chain and nginx is not
        reloaded; nginx reloads only when apps or their instance counts change.
        """
        with self._locked():
            self._write_main()
            servers = self.nat.fronts(routes) if self.nat is not None else direct_servers(routes)
            text = render_sites(
                routes,
                self.settings.router_bind,
                self.settings.domain,
                servers,
                self.settings.wake_bind,
            )
            same = self.sites_conf.exists() and self.sites_conf.read_text() == text
            candidate = None if same else self._checked(text)
            try:
                if candidate is not None and self._only_removes(routes, servers):
                    # Instances leave (an app left with none answers 503): nginx stops using
                    # their front addresses before those stop leading to the instances.
                    self._take(candidate, None)
                    self._switch(routes, servers)
                else:
                    previous = self._switch(routes, servers)
                    if candidate is not None:
                        self._take(candidate, previous)
            finally:
                if candidate is not None:
                    candidate.unlink(missing_ok=True)

    def _only_removes(self, routes: list[Route], servers: Mapping[str, list[str]]) -> bool:
        """Whether the new NAT rules are some of the rules written now (nothing new to reach)."""
        if self.nat is None:
            return False
        new = set(self.nat.rules(routes, servers).splitlines())
        return new <= set((self.nat.written() or "").splitlines())

    def _switch(self, routes: list[Route], servers: Mapping[str, list[str]]) -> str | None:
        """Point the front addresses at the instances; the rules that were there before."""
        if self.nat is None:
            return None
        previous = self.nat.written()
        try:
            self.nat.apply(self.nat.rules(routes, servers))
        except NatError as exc:
            raise RouterError(str(exc)) from exc
        return previous

    def _take(self, candidate: Path, previous_rules: str | None) -> None:
        """Swap a checked configuration in and reload; put the old NAT rules back on failure."""
        old = self.sites_conf.read_text() if self.sites_conf.exists() else None
        os.replace(candidate, self.sites_conf)
        try:
            if self.is_running():
                self.reload()
        except RouterError:
            if old is not None:
                _atomic_write(self.sites_conf, old)
            if self.nat is not None and previous_rules is not None:
                self.nat.apply(previous_rules)
            raise

    def release_switch(self) -> None:
        """Remove the NAT chain (``slipway server down``); the next apply writes it again."""
        if self.nat is not None:
            self.nat.remove()

    def _write_main(self) -> None:
        for path in (self.dir, self.logs_dir, self.temp_dir):
            path.mkdir(parents=True, exist_ok=True)
        text = self.render_main(self.sites_conf)
        if not self.main_conf.exists() or self.main_conf.read_text() != text:
            _atomic_write(self.main_conf, text)

    def _swap_in(self, sites: str) -> None:
        candidate = self._checked(sites)
        try:
            os.replace(candidate, self.sites_conf)
        finally:
            candidate.unlink(missing_ok=True)

    def _checked(self, sites: str) -> Path:
        """A temporary file with ``sites``, which ``nginx -t`` accepted (RouterError if not)."""
        candidate = _temp_file(self.dir, "sites-", sites)
        check_conf = _temp_file(self.dir, "check-", self.render_main(candidate))
        try:
            self._check(check_conf)
        except BaseException:
            candidate.unlink(missing_ok=True)
            raise
        finally:
            check_conf.unlink(missing_ok=True)
        return candidate

    def _check(self, conf: Path) -> None:
        result = self._nginx(["-t", "-c", str(conf)])
        if result.returncode != 0:
            detail = result.stderr.strip().splitlines()
            raise RouterError(
                "nginx refused the new routing configuration, the old one stays in place: "
                + (detail[0] if detail else "no detail")
            )

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # The worker, the reconciler and the API may all rewrite routes at once.
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # ----- the process ---------------------------------------------------------------------

    def command(self, foreground: bool = False) -> list[str]:
        """The command line that runs this router (foreground: for a supervisor)."""
        args = self._base_args() + ["-c", str(self.main_conf)]
        return args + (["-g", "daemon off;"] if foreground else [])

    def _base_args(self) -> list[str]:
        # -p and -e keep even nginx's start-up messages out of the system's /var/log/nginx.
        return [nginx_binary(), "-p", str(self.dir), "-e", str(self.logs_dir / "error.log")]

    def pid(self) -> int | None:
        """The master process id, when nginx is running."""
        return live_pid(self.pid_file)

    def worker_pids(self) -> set[int]:
        """The worker processes' ids; none when nginx is not running."""
        pid = self.pid()
        return _children(pid) if pid is not None else set()

    def is_running(self) -> bool:
        return self.pid() is not None

    def start(self) -> None:
        """Start nginx in the background if it is not running."""
        if self.is_running():
            return
        self.ensure_config()
        result = subprocess.run(
            self.command(), capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
        )
        if result.returncode != 0:
            raise RouterError(f"nginx did not start: {result.stderr.strip()}")
        # A reload signal that comes before the workers exist is lost: wait for them.
        self._wait(self._serving, "nginx did not start its workers")

    def _serving(self) -> bool:
        pid = self.pid()
        return pid is not None and bool(_children(pid))

    def reload(self) -> None:
        """Reload the configuration and wait until new workers serve it.

        Old workers finish the requests they hold, so a reload drops nothing.
        """
        pid = self.pid()
        if pid is None:
            return
        before = _children(pid)
        os.kill(pid, signal.SIGHUP)
        # nginx reports a failed reload only in its log: new workers are the sign it took, and
        # old workers stop accepting once they call themselves "shutting down".
        self._wait(
            lambda: bool(_children(pid) - before) and not _still_accepting(before),
            f"nginx did not load the new configuration; see {self.logs_dir / 'error.log'}",
        )

    def stop(self) -> None:
        """Stop nginx gracefully (SIGQUIT), then for good if it does not go."""
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGQUIT)
        try:
            self._wait(lambda: not _alive(pid), "nginx did not stop")
        except RouterError:
            os.kill(pid, signal.SIGKILL)

    def _nginx(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._base_args() + args,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )

    @staticmethod
    def _wait(done: Callable[[], bool], message: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done():
                return
            time.sleep(0.05)
        raise RouterError(message)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done == 0


def _children(pid: int) -> set[int]:
    """Process ids whose parent is pid (nginx's workers)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces; the parent id is the second field after it.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.add(int(entry.name))
    return found


def _still_accepting(workers: set[int]) -> bool:
    """True while one of these nginx workers still runs and is not shutting down."""
    for pid in workers:
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if title and b"shutting down" not in title:
            return True
    return False


def _temp_file(directory: Path, prefix: str, text: str) -> Path:
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=".conf.tmp", dir=directory)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return Path(name)


def _atomic_write(path: Path, text: str) -> None:
    os.replace(_temp_file(path.parent, path.name + "-", text), path)
