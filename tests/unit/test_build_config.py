"""Which of an app's config vars a build container gets: the few a build reads, as on Heroku."""

from __future__ import annotations

from slipway.services.builds import BUILD_CONFIG_VARS, build_config


def test_only_the_build_config_vars_reach_the_build() -> None:
    config = {"DISABLE_COLLECTSTATIC": "1", "SECRET_KEY": "s3cret", "DATABASE_URL": "postgres://x"}
    assert build_config(config) == {"DISABLE_COLLECTSTATIC": "1"}
    assert BUILD_CONFIG_VARS == ("DISABLE_COLLECTSTATIC",)


def test_an_app_without_them_gives_the_build_none() -> None:
    assert build_config({"SECRET_KEY": "s3cret"}) == {}
    assert build_config({}) == {}
