"""Malformed git URLs (``..``, odd app names, paths git never asks for) answer 4xx, never 500."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from slipway.config import Settings
from slipway.db import session_scope, upgrade_database
from slipway.services import apps, users
from slipway.webapp import create_app
from tests.fakes import fake_adapters


@pytest.fixture
def client(settings: Settings, tmp_path: Path) -> Iterator[tuple[FlaskClient, dict[str, str]]]:
    upgrade_database(settings)
    flask_app = create_app(settings, fake_adapters(tmp_path / "adapters"))
    factory = flask_app.extensions["slipway"].session_factory
    with session_scope(factory) as session:
        alice = users.create_user(session, "alice")
        token = users.create_token(session, alice)
        apps.create_app(session, alice, "hello", settings)
    auth = base64.b64encode(f"git:{token}".encode()).decode()
    yield flask_app.test_client(), {"Authorization": f"Basic {auth}"}


@pytest.mark.parametrize(
    "path",
    [
        "/git/hello.git/../../x",
        "/git/hello.git/..%2f..%2fconfig",
        "/git/hello.git/info/../../../etc/passwd",
        "/git/hello.git/objects/../config",
        "/git/hello.git/HEAD/..",
        "/git/hello.git/config",
        "/git/hello.git/hooks/pre-receive",
        "/git/hello.git/%00",
        "/git/..git/info/refs",
        "/git/%2e%2e.git/info/refs",
        "/git/.hello.git/HEAD",
        "/git/a..b.git/HEAD",
        "/git/..%2fhello.git/info/refs",
        "/git/Hello.git/info/refs",
    ],
)
def test_malformed_git_paths_are_4xx_and_say_nothing_about_the_repository(
    client: tuple[FlaskClient, dict[str, str]], path: str, settings: Settings
) -> None:
    test_client, auth = client
    answer = test_client.get(path, headers=auth)
    assert answer.status_code == 404, answer.data
    assert b"hello" not in answer.data and b"ref" not in answer.data.lower()


def test_a_well_formed_path_still_reaches_git(client: tuple[FlaskClient, dict[str, str]]) -> None:
    test_client, auth = client
    answer = test_client.get("/git/hello.git/info/refs?service=git-upload-pack", headers=auth)
    assert answer.status_code == 200 and b"# service=git-upload-pack" in answer.data


def test_malformed_paths_without_a_token_are_401(
    client: tuple[FlaskClient, dict[str, str]],
) -> None:
    test_client, _ = client
    assert test_client.get("/git/hello.git/../../x").status_code == 401
