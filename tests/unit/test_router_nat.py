"""The NAT switch's front addresses and rules (no iptables call: only what would be written)."""

from __future__ import annotations

from pathlib import Path

from slipway.router.base import Route
from slipway.router.nat import NatSwitch
from slipway.router.nginx import render_sites


def test_each_routed_app_gets_stable_front_addresses_one_per_slot(tmp_path: Path) -> None:
    nat = NatSwitch("abc123", tmp_path)
    first = nat.fronts([Route("a", [5001, 5002]), Route("b", [6001]), Route("idle", [])])
    again = nat.fronts([Route("b", [7001]), Route("a", [8001, 8002])])

    assert first == again  # new instances, the same front addresses: nginx needs no reload
    assert "idle" not in first
    assert len(set(first["a"]) | set(first["b"])) == 3
    assert all(f.startswith(f"127.{nat.first_octet}.") for f in first["a"] + first["b"])


def test_platforms_get_different_front_networks_and_chains(tmp_path: Path) -> None:
    one, two = NatSwitch("1", tmp_path / "1"), NatSwitch("0f3a9c2b7d11", tmp_path / "2")

    assert (one.first_octet, one.base_port) != (two.first_octet, two.base_port)
    assert one.chain != two.chain and len(two.chain) <= 28  # iptables' limit on chain names


def test_the_rules_map_each_front_address_to_its_instance(tmp_path: Path) -> None:
    nat = NatSwitch("abc123", tmp_path)
    routes = [Route("a", [5001, 5002])]
    fronts = nat.fronts(routes)
    rules = nat.rules(routes, fronts).splitlines()

    assert rules[:2] == ["*nat", f":{nat.chain} - [0:0]"]  # declared: flushed, then refilled
    address, _, port = fronts["a"][1].rpartition(":")
    assert (
        f"-A {nat.chain} -d {address}/32 -p tcp -m tcp --dport {port} "
        f"-j DNAT --to-destination 127.0.0.1:5002"
    ) in rules
    assert rules[-1] == "COMMIT"


def test_nginx_names_the_front_addresses_not_the_instances(tmp_path: Path) -> None:
    nat = NatSwitch("abc123", tmp_path)
    routes = [Route("a", [5001])]
    text = render_sites(routes, "127.0.0.1:8080", "localhost", nat.fronts(routes))

    assert f"server {nat.fronts(routes)['a'][0]} " in text
    assert "5001" not in text
    assert "keepalive_time 1s;" in text


def test_the_wake_service_is_named_by_its_real_address_never_a_front(tmp_path: Path) -> None:
    nat = NatSwitch("abc123", tmp_path)
    routes = [
        Route("awake", [5001], wakeable=True),
        Route("asleep", [], wakeable=True, sleeping=True),
    ]
    fronts = nat.fronts(routes)
    text = render_sites(routes, "127.0.0.1:8080", "localhost", fronts, "127.0.0.1:7002")

    assert list(fronts) == ["awake"]  # a sleeping app has no front address
    assert f"server {fronts['awake'][0]} max_fails=1 fail_timeout=2s;" in text
    assert text.count("server 127.0.0.1:7002 backup;") == 1
    assert "server 127.0.0.1:7002;" in text
    assert "7002" not in nat.rules(routes, fronts)


def test_an_app_going_to_sleep_only_removes_nat_rules(tmp_path: Path) -> None:
    """So the router reloads nginx (to the wake service) before the rules to its instances go."""
    nat = NatSwitch("abc123", tmp_path)
    awake = [Route("hello", [5001], wakeable=True), Route("other", [6001], wakeable=True)]
    asleep = [Route("hello", [], wakeable=True, sleeping=True), awake[1]]
    before = set(nat.rules(awake, nat.fronts(awake)).splitlines())
    after = set(nat.rules(asleep, nat.fronts(asleep)).splitlines())

    assert after < before  # only removes: nginx first, then the NAT chain
    assert not before <= after  # waking adds rules: the NAT chain first, then nginx
