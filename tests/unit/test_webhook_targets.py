"""Webhook targets (SSRF): what may be subscribed and connected to, and the pinned connection.

The delivery tests use real HTTP(S) servers on 127.0.0.1, allowed the way an operator would
(``SLIPWAY_WEBHOOK_ALLOWED_NETWORKS``), and a resolver that names them, so DNS answers (and a
rebinding name) are under the test's control.
"""

from __future__ import annotations

import ipaddress
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from slipway.config import Settings
from slipway.services import webhooks
from slipway.services.errors import Invalid
from slipway.services.webhook_targets import (
    IPAddress,
    TargetRefused,
    Targets,
    _local_ipv4,
    parse_networks,
)

PUBLIC = ipaddress.ip_address("93.184.215.14")
OWN = ipaddress.ip_address("198.51.100.7")  # stands for the platform host's public address


def fixed(answers: dict[str, list[str]]) -> Any:
    """A resolver with fixed answers; literal addresses resolve to themselves."""

    def resolve(host: str, port: int) -> list[IPAddress]:
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        if host not in answers:
            raise OSError(f"{host}: Name or service not known")
        return [ipaddress.ip_address(a) for a in answers[host]]

    return resolve


def targets(**kw: Any) -> Targets:
    answers = kw.pop("answers", {})
    return Targets(resolve=fixed(answers), own_addresses=lambda: frozenset({OWN}), **kw)


REFUSED_HOSTS = [
    "127.0.0.1",
    "127.3.4.5",
    "[::1]",
    "0.0.0.0",
    "[::]",
    "169.254.169.254",
    "[fe80::1]",
    "224.0.0.1",
    "255.255.255.255",
    "240.0.0.1",
    "[::ffff:127.0.0.1]",
    "[2002:7f00:1::]",  # 6to4 of 127.0.0.1
    "[64:ff9b::a9fe:a9fe]",  # NAT64 of 169.254.169.254
    "198.51.100.7",  # the host's own
    "localhost",
    "loopback.example",
    "mixed.example",
]
PRIVATE_HOSTS = ["10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "[fd00::1]"]
ANSWERS = {
    "localhost": ["127.0.0.1", "::1"],
    "loopback.example": ["127.0.0.1"],
    "mixed.example": ["93.184.215.14", "127.0.0.1"],
    "public.example": ["93.184.215.14"],
}


@pytest.mark.parametrize("host", REFUSED_HOSTS + PRIVATE_HOSTS)
def test_inward_hosts_are_refused_at_creation_with_one_sentence(host: str) -> None:
    with pytest.raises(TargetRefused) as refused:
        targets(answers=ANSWERS).check_host(host, 80)
    assert str(refused.value).count(".") == 1 + host.count(".")  # one sentence, host included
    assert "A webhook cannot go to" in str(refused.value)


@pytest.mark.parametrize("host", PRIVATE_HOSTS)
def test_private_ranges_are_allowed_when_the_operator_says_so(host: str) -> None:
    targets(allow_private=True).check_host(host, 80)


@pytest.mark.parametrize("host", REFUSED_HOSTS)
def test_allowing_private_ranges_never_allows_loopback_link_local_or_the_host(host: str) -> None:
    with pytest.raises(TargetRefused):
        targets(answers=ANSWERS, allow_private=True).check_host(host, 80)


def test_public_hosts_and_unresolvable_names_are_accepted_at_creation() -> None:
    rules = targets(answers=ANSWERS)
    rules.check_host("public.example", 443)
    rules.check_host("93.184.215.14", 80)
    rules.check_host("not-yet.example", 80)  # checked again at every delivery


def test_allowed_networks_are_trusted_and_nothing_else_is() -> None:
    rules = targets(allowed_networks=parse_networks(["127.0.0.2/32", "10.9.0.0/16"]))
    for host in ("127.0.0.2", "10.9.3.4"):
        rules.check_host(host, 80)
    for host in ("127.0.0.1", "10.8.0.1", "[::1]"):
        with pytest.raises(TargetRefused):
            rules.check_host(host, 80)
    with pytest.raises(ValueError, match="not a network"):
        parse_networks(["127.0.0.1/33"])


def test_the_settings_turn_into_rules() -> None:
    settings = Settings(webhook_allow_private=True, webhook_allowed_networks=("127.0.0.2/32",))
    rules = Targets.from_settings(settings)
    assert rules.allow_private and rules.allowed_networks == (ipaddress.ip_network("127.0.0.2/32"),)


def test_the_hosts_own_ipv4_addresses_are_read_from_the_fib_trie() -> None:
    trie = """Main:
  +-- 0.0.0.0/0 3 0 4
     +-- 127.0.0.0/8 2 0 2
           |-- 127.0.0.1
              /32 host LOCAL
     |-- 192.0.2.2
        /32 host LOCAL
     |-- 192.0.2.255
        /32 link BROADCAST
"""
    assert [str(a) for a in _local_ipv4(trie)] == ["127.0.0.1", "192.0.2.2"]


def test_the_real_host_addresses_include_loopback() -> None:
    assert ipaddress.ip_address("127.0.0.1") in Targets().own_addresses()


def test_the_api_service_refuses_an_inward_url_as_invalid() -> None:
    with pytest.raises(Invalid, match="cannot go to 169.254.169.254"):
        webhooks._check_url("http://169.254.169.254/latest/meta-data/", targets())
    with pytest.raises(Invalid, match="http:// or https://"):
        webhooks._check_url("http://x:notaport/", targets())
    for sneaky in ("http://public.example/\r\nHost: 127.0.0.1", "http://public.example/ a"):
        with pytest.raises(Invalid, match="no spaces or control"):
            webhooks._check_url(sneaky, targets(answers=ANSWERS))


@pytest.mark.parametrize(
    "url",
    [
        "http://user:pw@127.0.0.1/",
        "http://127.0.0.1#@public.example/",
        "http://public.example\\@127.0.0.1/",
        "http://127.0.0.1:80\\@public.example/",
    ],
)
def test_tricky_urls_are_judged_by_the_host_they_connect_to(url: str) -> None:
    from urllib.parse import urlsplit

    rules = targets(answers=ANSWERS)
    host = urlsplit(url).hostname or ""
    # Whatever a URL parser makes of it, the delivery connects where this parse points, and
    # that is what is checked.
    if host == "public.example":
        webhooks._check_url(url, rules)
    else:
        with pytest.raises(Invalid):
            webhooks._check_url(url, rules)


# ----------------------------------------------------------------------------- delivery


class Receiver:
    """A real HTTP(S) server on 127.0.0.1 that records requests and answers ``status``."""

    def __init__(self, status: int = 200, location: str = "", tls: ssl.SSLContext | None = None):
        self.requests: list[dict[str, str]] = []
        self.sni: list[str | None] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append(dict(self.headers))
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            tls.sni_callback = lambda sock, name, ctx: receiver.sni.append(name)
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


LOOPBACK_ALLOWED = parse_networks(["127.0.0.1/32"])


def request(url: str) -> webhooks.Request:
    return webhooks.Request(1, url, b"{}", {"Content-Type": "application/json"})


def test_a_delivery_connects_to_the_checked_address_with_the_urls_host(
    receiver: Receiver,
) -> None:
    rules = targets(answers={"hooks.example": ["127.0.0.1"]}, allowed_networks=LOOPBACK_ALLOWED)
    answer = webhooks.http_post(request(f"http://hooks.example:{receiver.port}/h?x=1"), 5, rules)
    assert answer.ok, answer.error
    assert receiver.requests[0]["Host"] == f"hooks.example:{receiver.port}"


def test_a_name_that_rebinds_to_loopback_after_creation_is_refused_at_delivery(
    receiver: Receiver,
) -> None:
    answers = {"rebind.example": ["93.184.215.14"]}
    rules = targets(answers=answers)
    rules.check_host("rebind.example", receiver.port)  # public when the webhook is made
    answers["rebind.example"] = ["127.0.0.1"]  # then the attacker's DNS points inward
    answer = webhooks.http_post(request(f"http://rebind.example:{receiver.port}/"), 5, rules)
    assert not answer.ok and answer.status_code is None
    assert answer.error is not None and "cannot go to rebind.example" in answer.error
    assert receiver.requests == []  # nothing was connected to


@pytest.mark.parametrize("url", ["http://127.0.0.1:{port}/", "http://localhost:{port}/"])
def test_a_loopback_url_stored_before_the_rules_is_never_connected_to(
    receiver: Receiver, url: str
) -> None:
    answer = webhooks.http_post(request(url.format(port=receiver.port)), 5, Targets())
    assert answer.status_code is None and receiver.requests == []
    assert answer.error is not None and "cannot go to" in answer.error


def test_redirects_are_not_followed(receiver: Receiver) -> None:
    redirecting = Receiver(302, location=f"http://127.0.0.1:{receiver.port}/inner")
    try:
        rules = targets(allowed_networks=parse_networks(["127.0.0.1/32"]))
        answer = webhooks.http_post(request(f"http://127.0.0.1:{redirecting.port}/"), 5, rules)
    finally:
        redirecting.close()
    assert answer.status_code == 302 and not answer.ok
    assert receiver.requests == []


def self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}"]
        + ["-addext", f"subjectAltName=DNS:{name}"],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_https_keeps_sni_and_the_certificate_check_on_the_urls_host(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, "hooks.example")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = Receiver(tls=context)
    try:
        answers = {"hooks.example": ["127.0.0.1"], "other.example": ["127.0.0.1"]}
        rules = targets(answers=answers, allowed_networks=LOOPBACK_ALLOWED, ca_certs=str(cert))
        good = webhooks.http_post(request(f"https://hooks.example:{server.port}/"), 5, rules)
        wrong = webhooks.http_post(request(f"https://other.example:{server.port}/"), 5, rules)
    finally:
        server.close()
    assert good.ok, good.error
    assert server.sni[0] == "hooks.example"
    assert not wrong.ok and wrong.error is not None  # the certificate names another host
    assert len(server.requests) == 1
