"""The nginx configuration the router renders (no nginx needed)."""

from __future__ import annotations

import pytest

from slipway.config import Settings
from slipway.router.base import Route
from slipway.router.nginx import NginxRouter, RouterError, render_sites


def test_an_app_with_live_instances_gets_an_upstream_with_keepalive() -> None:
    text = render_sites([Route("hello", [5001, 5002])], "127.0.0.1:8080", "example.org")

    assert "upstream up_hello {" in text
    assert "server 127.0.0.1:5001" in text and "server 127.0.0.1:5002" in text
    assert "keepalive 16;" in text
    assert "server_name hello.example.org;" in text
    assert 'proxy_set_header Connection "";' in text


def test_the_default_server_strips_the_path_prefix_and_redirects_the_bare_name() -> None:
    text = render_sites([Route("hello", [5001])], "127.0.0.1:8080", "localhost")

    assert "listen 127.0.0.1:8080 default_server;" in text
    assert "location /hello/ {\n        proxy_pass http://up_hello/;" in text
    assert "location = /hello {\n        return 301 /hello/$is_args$args;" in text
    assert "proxy_set_header X-Forwarded-Prefix /hello;" in text


def test_an_app_without_live_instances_answers_503_and_has_no_upstream() -> None:
    text = render_sites([Route("idle", [])], "127.0.0.1:8080", "localhost")

    assert "upstream up_idle" not in text
    assert "return 503" in text and "The app idle has no running instance" in text


def test_unknown_apps_get_a_404_that_names_them() -> None:
    text = render_sites([], "0.0.0.0:80", "localhost")

    assert 'return 404 "No app named $slipway_host_app is deployed here.\\n";' in text
    assert '"~^(?<name>[a-z0-9-]+)\\.localhost$" $name;' in text


def test_routes_are_rendered_in_a_stable_order() -> None:
    one = render_sites([Route("b", [1]), Route("a", [2])], "127.0.0.1:1", "localhost")
    two = render_sites([Route("a", [2]), Route("b", [1])], "127.0.0.1:1", "localhost")

    assert one == two


@pytest.mark.parametrize("name", ["Hello", "a b", "x;}", "-lead", "", "a" * 64])
def test_names_that_are_not_dns_labels_never_reach_nginx(name: str) -> None:
    with pytest.raises(RouterError, match="not a DNS label"):
        render_sites([Route(name, [5000])], "127.0.0.1:8080", "localhost")


def test_the_main_configuration_keeps_everything_in_the_nginx_dir(settings: Settings) -> None:
    router = NginxRouter(settings)
    text = router.render_main(router.sites_conf)

    assert f'pid "{settings.nginx_dir}/nginx.pid";' in text
    assert f'include "{settings.nginx_dir}/sites.conf";' in text
    assert "client_max_body_size 100m;" in text
    assert "proxy_next_upstream error timeout http_502;" in text
    assert "/var/" not in text


# ----------------------------------------------------------------------------- sleep and wake

WAKE = "127.0.0.1:7002"


def _upstream(text: str, app: str) -> list[str]:
    """The server lines of an app's upstream block."""
    block = text.split(f"upstream up_{app} {{\n", 1)[1].split("}", 1)[0]
    return [line.strip() for line in block.splitlines() if line.strip().startswith("server ")]


def test_a_wakeable_app_with_instances_has_the_wake_service_as_backup() -> None:
    routes = [Route("hello", [5001, 5002], wakeable=True)]
    text = render_sites(routes, "127.0.0.1:8080", "localhost", wake=WAKE)

    assert _upstream(text, "hello") == [
        "server 127.0.0.1:5001 max_fails=1 fail_timeout=2s;",
        "server 127.0.0.1:5002 max_fails=1 fail_timeout=2s;",
        "server 127.0.0.1:7002 backup;",
    ]


def test_a_sleeping_or_instance_less_wakeable_app_goes_to_the_wake_service_alone() -> None:
    routes = [
        Route("asleep", [], wakeable=True, sleeping=True),
        Route("crashed", [], wakeable=True),
    ]
    text = render_sites(routes, "127.0.0.1:8080", "localhost", wake=WAKE)

    assert _upstream(text, "asleep") == ["server 127.0.0.1:7002;"]
    assert _upstream(text, "crashed") == ["server 127.0.0.1:7002;"]
    assert "return 503" not in text
    assert "location /asleep/ {\n        proxy_pass http://up_asleep/;" in text


def test_apps_that_are_not_wakeable_answer_503_as_before() -> None:
    routes = [
        Route("new", []),
        Route("scaled-to-zero", [], wakeable=False, sleeping=True),
        Route("plain", [5001]),
    ]
    text = render_sites(routes, "127.0.0.1:8080", "localhost", wake=WAKE)

    assert "upstream up_new" not in text and "upstream up_scaled-to-zero" not in text
    assert "The app new has no running instance" in text
    assert "The app scaled-to-zero has no running instance" in text
    assert _upstream(text, "plain") == ["server 127.0.0.1:5001 max_fails=1 fail_timeout=2s;"]
    assert WAKE not in text


def test_without_a_wake_service_no_app_is_wakeable() -> None:
    text = render_sites([Route("asleep", [], wakeable=True, sleeping=True)], "127.0.0.1:1", "x")

    assert "upstream up_asleep" not in text and "return 503" in text


def test_every_proxied_location_names_its_app() -> None:
    routes = [Route("hello", [5001], wakeable=True), Route("asleep", [], True, True)]
    text = render_sites(routes, "127.0.0.1:8080", "localhost", wake=WAKE)

    assert text.count("proxy_set_header X-Slipway-App hello;") == 2  # by host and by path
    assert text.count("proxy_set_header X-Slipway-App asleep;") == 2
    assert text.count("proxy_pass ") == 4


@pytest.mark.parametrize(
    "wake", ["", "7002", "127.0.0.1", "1.2.3.4:7002; evil", "a b:1", "127.0.0.1:7002\n"]
)
def test_a_wake_address_that_is_not_host_port_never_reaches_nginx(wake: str) -> None:
    with pytest.raises(RouterError, match="SLIPWAY_WAKE_BIND"):
        render_sites([Route("hello", [5001], True)], "127.0.0.1:8080", "localhost", wake=wake)


def test_the_main_configuration_logs_each_proxied_request_for_the_sleeper(
    settings: Settings,
) -> None:
    router = NginxRouter(settings)
    text = router.render_main(router.sites_conf)

    assert "log_format slipway_traffic '$msec $proxy_host';" in text
    assert (
        f'access_log "{settings.nginx_dir}/logs/traffic.log" slipway_traffic buffer=32k flush=2s;'
    ) in text
    assert f'access_log "{settings.nginx_dir}/logs/access.log" combined' in text
