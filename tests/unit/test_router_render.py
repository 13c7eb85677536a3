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
