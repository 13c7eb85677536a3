"""Switching traffic without reloading nginx: front addresses that the kernel maps to instances.

When nginx reloads, its old workers close their clients' idle keep-alive connections at once. A
client that sends its next request on such a connection in that instant gets a reset (HTTP/1.1
allows the race; not every client retries), so a reload on every deploy loses a request now and
then. Here nginx's configuration names only *front addresses*, one per app and instance slot, on
a loopback address of this platform's own: ``127.A.B.C:P+slot``. A chain in the kernel's NAT
table maps each front address to the host port of the instance serving it now. A switch rewrites
that chain in one ``iptables-restore``: new connections go to the new instances, open ones stay
where they are, and nginx keeps every client connection. nginx itself is reloaded only when the
set of apps or their instance counts change.

nginx's own keep-alive connections to an instance live at most ``UPSTREAM_KEEPALIVE_TIME``
(nginx's ``keepalive_time``), shorter than the drain grace, so none of them still points at an
old instance when it is stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from slipway.router.base import Route
from slipway.services.errors import SlipwayError

UPSTREAM_KEEPALIVE_TIME = "1s"
MAX_APPS = 65535  # the two low bytes of the front address
COMMAND_TIMEOUT = 30


class NatError(SlipwayError):
    """The NAT table could not be read or changed; the message says what to do."""


class NatSwitch:
    """The front addresses of one platform and the NAT chain that maps them to instances.

    ``state_dir`` keeps which app has which front address (``front.json``) and the rules last
    written (``nat.rules``), so an unchanged mapping costs no iptables call.
    """

    def __init__(self, platform_id: str, state_dir: Path) -> None:
        digest = hashlib.sha256(f"slipway-router-{platform_id}".encode()).digest()
        self.first_octet = 1 + digest[0] % 254  # 127.<1..254>.x.y: never 127.0.0.0/16
        self.base_port = 20000 + int.from_bytes(digest[1:3], "big") % 20000
        self.chain = f"SLIPWAY-{platform_id[:12].upper()}"
        self.network = f"127.{self.first_octet}.0.0/16"
        self.state_dir = state_dir
        self.front_file = state_dir / "front.json"
        self.rules_file = state_dir / "nat.rules"

    # ----- front addresses -------------------------------------------------------------------

    def fronts(self, routes: list[Route]) -> dict[str, list[str]]:
        """``host:port`` of each slot of each routed app, in the order of its upstreams."""
        numbers = self._numbers([r.app for r in routes if r.upstreams])
        return {
            route.app: [
                self._front(numbers[route.app], slot) for slot in range(len(route.upstreams))
            ]
            for route in routes
            if route.upstreams
        }

    def _front(self, number: int, slot: int) -> str:
        return f"127.{self.first_octet}.{number >> 8}.{number & 255}:{self.base_port + slot}"

    def _numbers(self, apps: list[str]) -> dict[str, int]:
        """A stable number per app (1..65535), kept while the app is routed."""
        try:
            known: dict[str, int] = json.loads(self.front_file.read_text())
        except (OSError, ValueError):
            known = {}
        numbers = {app: n for app, n in known.items() if app in apps}
        used = set(numbers.values())
        free = (n for n in range(1, MAX_APPS + 1) if n not in used)
        for app in sorted(set(apps) - set(numbers)):
            try:
                numbers[app] = next(free)
            except StopIteration:
                raise NatError(f"The router has no front address left for {app}.") from None
        if numbers != known:
            _atomic_write(self.front_file, json.dumps(numbers, sort_keys=True))
        return numbers

    # ----- the NAT chain ---------------------------------------------------------------------

    def rules(self, routes: list[Route], fronts: Mapping[str, list[str]]) -> str:
        """The whole chain as ``iptables-restore`` input (declaring it flushes it first)."""
        lines = ["*nat", f":{self.chain} - [0:0]"]
        for route in sorted(routes, key=lambda r: r.app):
            for front, port in zip(fronts.get(route.app, []), route.upstreams, strict=False):
                address, _, front_port = front.rpartition(":")
                lines.append(
                    f"-A {self.chain} -d {address}/32 -p tcp -m tcp --dport {front_port}"
                    f" -j DNAT --to-destination 127.0.0.1:{port}"
                )
        return "\n".join([*lines, "COMMIT", ""])

    def apply(self, rules: str) -> None:
        """Make the chain exactly ``rules``, in one atomic step; nothing when it already is."""
        if self.written() == rules:
            return
        self.ensure_hook()
        _run(["iptables-restore", "--wait", "--noflush"], rules)
        _atomic_write(self.rules_file, rules)

    def written(self) -> str | None:
        """The rules this platform last wrote (None after :meth:`remove` or on a new host)."""
        try:
            return self.rules_file.read_text()
        except OSError:
            return None

    def ensure_hook(self) -> None:
        """Create the chain and send this platform's front network to it (idempotent)."""
        hook = ["OUTPUT", "-d", self.network, "-p", "tcp", "-j", self.chain]
        if _iptables(["-S", self.chain], check=False).returncode != 0:
            _iptables(["-N", self.chain])
            # A new, empty chain (after a host restart the kernel's table starts empty): what
            # was written before is gone, so the next apply must write it again.
            self.rules_file.unlink(missing_ok=True)
        if _iptables(["-C", *hook], check=False).returncode != 0:
            _iptables(["-A", *hook])

    def remove(self) -> None:
        """Remove the hook and the chain (``slipway server down``); a later apply restores them."""
        hook = ["OUTPUT", "-d", self.network, "-p", "tcp", "-j", self.chain]
        while _iptables(["-D", *hook], check=False).returncode == 0:
            pass
        _iptables(["-F", self.chain], check=False)
        _iptables(["-X", self.chain], check=False)
        self.rules_file.unlink(missing_ok=True)

    def check_usable(self) -> None:
        """Raise :class:`NatError` with advice when the NAT table cannot be used here."""
        _iptables(["-S", "OUTPUT"])


def _iptables(args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    return _run(["iptables", "--wait", "-t", "nat", *args], None, check)


def _run(
    command: list[str], stdin: str | None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(
            command,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NatError(_advice(f"{command[0]} could not run: {exc}")) from exc
    if check and done.returncode != 0:
        detail = " ".join(done.stderr.split())[-300:] or f"exit status {done.returncode}"
        raise NatError(_advice(f"{command[0]} failed: {detail}"))
    return done


def _advice(reason: str) -> str:
    return (
        f"The router switches traffic through the kernel's NAT table, which is not usable here "
        f"({reason}). Run the platform as root with iptables installed, or set "
        f"SLIPWAY_ROUTER_SWITCH=reload."
    )


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
