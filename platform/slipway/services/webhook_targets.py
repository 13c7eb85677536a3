"""Where a webhook may go: never to the platform's host or its neighbours (no SSRF).

A webhook URL whose host is, or resolves to, a loopback, link-local, unspecified, multicast,
reserved or this host's own address is refused; private ranges (RFC 1918, fc00::/7, CGNAT and
the other non-global ranges) are refused unless the operator allows them
(``SLIPWAY_WEBHOOK_ALLOW_PRIVATE=1``). Networks the operator lists in
``SLIPWAY_WEBHOOK_ALLOWED_NETWORKS`` (CIDRs) are always allowed.

The check runs when a webhook is created and again at every delivery, against the address the
delivery actually connects to: the name is resolved once, checked, and the connection is made to
that address (with the URL's host in the Host header and in TLS SNI and certificate checks), so a
name that changes its answer in between (DNS rebinding) cannot get round it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from slipway.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[IPAddress]]

# Refused unless the operator allows private networks: RFC 1918, unique local (fc00::/7), CGNAT.
# Any other non-global address (documentation, benchmarking ...) is treated the same way.
PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
REFUSED = (
    "A webhook cannot go to {host}: it is, or resolves to, a loopback, link-local, private, "
    "multicast or reserved address, or one of this host's own."
)


class TargetRefused(Exception):
    """The webhook's host may not be connected to; the message is one sentence for the user."""


def resolve_host(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (a literal address is itself), in the resolver's order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


def host_addresses() -> frozenset[IPAddress]:
    """The addresses of this host's own interfaces (Linux: from /proc), and its name's."""
    found: set[IPAddress] = set()
    found.update(_local_ipv4(_read("/proc/net/fib_trie")))
    for line in _read("/proc/net/if_inet6").splitlines():
        hexa = line.split()[0] if line.split() else ""
        if len(hexa) == 32:
            found.add(ipaddress.IPv6Address(int(hexa, 16)))
    try:
        found.update(resolve_host(socket.gethostname(), 0))
    except OSError:
        pass
    return frozenset(found)


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _local_ipv4(fib_trie: str) -> Iterable[IPAddress]:
    """The ``/32 host LOCAL`` entries of /proc/net/fib_trie: the host's IPv4 addresses."""
    last = ""
    for line in fib_trie.splitlines():
        text = line.strip()
        if text.startswith("|--"):
            last = text[3:].strip()
        elif "/32 host LOCAL" in text and last:
            yield ipaddress.IPv4Address(last)


def _plain(address: IPAddress) -> IPAddress:
    """An IPv4 address written as IPv6 (``::ffff:127.0.0.1``, 6to4 ...) as the IPv4 it is."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address in NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


@dataclass(frozen=True)
class Targets:
    """The rules for one platform: its settings, a resolver and the host's own addresses."""

    allow_private: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()
    resolve: Resolver = resolve_host
    own_addresses: Callable[[], frozenset[IPAddress]] = field(default=host_addresses)
    ca_certs: str | None = None  # a CA bundle for https receivers; None: the system's

    @classmethod
    def from_settings(cls, settings: Settings) -> Targets:
        return cls(
            allow_private=settings.webhook_allow_private,
            allowed_networks=parse_networks(settings.webhook_allowed_networks),
        )

    def allowed(self, address: IPAddress) -> bool:
        """Whether a delivery may connect to ``address``."""
        plain = _plain(address)
        if any(plain in network for network in self.allowed_networks if _same(plain, network)):
            return True
        own = self.own_addresses()
        if (
            plain.is_loopback
            or plain.is_link_local
            or plain.is_unspecified
            or plain.is_multicast
            or plain.is_reserved
            or plain in own
            or address in own
        ):
            return False
        if plain in ipaddress.ip_network("0.0.0.0/8") or str(plain) == "255.255.255.255":
            return False
        private = any(plain in n for n in PRIVATE_NETWORKS if _same(plain, n))
        return self.allow_private if private or not plain.is_global else True

    def addresses(self, host: str, port: int) -> list[IPAddress]:
        """The addresses ``host`` resolves to, all allowed; :class:`TargetRefused` otherwise.

        One forbidden answer refuses the host: a name that also points inward is not a
        receiver anyone needs.
        """
        try:
            found = self.resolve(host.strip("[]"), port)
        except (OSError, UnicodeError, ValueError):
            raise TargetRefused(f"The webhook's host {host} cannot be resolved.") from None
        if not found:
            raise TargetRefused(f"The webhook's host {host} cannot be resolved.")
        if not all(self.allowed(address) for address in found):
            raise TargetRefused(REFUSED.format(host=host))
        return found

    def check_host(self, host: str, port: int) -> None:
        """At creation: refuse a host that is, or resolves to, a forbidden address.

        A name that does not resolve (yet) is accepted: every delivery checks again.
        """
        try:
            found = self.resolve(host.strip("[]"), port)
        except (OSError, UnicodeError, ValueError):
            return
        if not all(self.allowed(address) for address in found):
            raise TargetRefused(REFUSED.format(host=host))


def _same(address: IPAddress, network: IPNetwork) -> bool:
    return address.version == network.version


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDRs such as ``203.0.113.0/24`` or ``127.0.0.1/32``; ValueError names a bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"SLIPWAY_WEBHOOK_ALLOWED_NETWORKS: {value!r} is not a network such as 10.1.2.0/24"
            ) from None
    return tuple(networks)
