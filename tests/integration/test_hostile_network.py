"""Hostile tenants on the network: an app cannot reach another tenant's container directly.

Every app and build container is on one bridge network with inter-container traffic off, so the
only way to another app is its public route through the router, like any client's.
"""

from __future__ import annotations

import json

import pytest

from slipway.runtime.docker import APP_NETWORK
from tests.integration.hostile import Tenant, alice, create_app, deploy, mallory
from tests.integration.platform import Platform
from tests.integration.test_e2e_api import containers_of
from tests.integration.test_processes_api import logging_app

pytestmark = pytest.mark.slow
__all__ = ["alice", "mallory"]

PROBE = """
import socket, sys
s = socket.socket()
s.settimeout(3)
try:
    s.connect((sys.argv[1], 5000))
    s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
    print("reached", s.recv(200))
except OSError as exc:
    print("blocked", type(exc).__name__)
"""


def deployed(platform: Platform, tenant: Tenant, version: str) -> str:
    app = create_app(platform, tenant, "net")
    state, shown = deploy(platform, tenant, app, logging_app(version))
    assert state["state"] == "succeeded", shown
    return app


def network_address(app: str) -> str:
    [container] = containers_of(app, "instance")
    networks = container.attrs["NetworkSettings"]["Networks"]
    assert list(networks) == [APP_NETWORK]
    return str(networks[APP_NETWORK]["IPAddress"])


def test_an_app_cannot_connect_to_another_tenants_container(
    running_platform: Platform, alice: Tenant, mallory: Tenant
) -> None:
    victim = deployed(running_platform, alice, "alice-v1")
    attacker = deployed(running_platform, mallory, "mallory-v1")
    address = network_address(victim)

    answer = running_platform.api(
        "POST",
        f"/apps/{attacker}/run",
        token=mallory.token,
        json={"command": ["python3", "-c", PROBE, address]},
        timeout=120,
    )

    assert answer.status_code == 200, answer.text
    lines = [json.loads(line) for line in answer.text.splitlines()]
    output = " ".join(m["line"] for m in lines if "line" in m)
    assert output.startswith("blocked"), output
    assert "alice-v1" not in answer.text
    # The victim still serves its public route, as to anyone.
    assert "alice-v1" in running_platform.http_get_app(victim).text
