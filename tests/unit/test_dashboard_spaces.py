"""The dashboard's spaces page and an app's attached spaces, on the fake space provider."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.config import Settings
from slipway.models import User
from slipway.services import apps, spaces
from tests.fakes import FakeSpaces
from tests.unit import test_dashboard
from tests.unit.test_dashboard import Dash

M = 1024**2


@pytest.fixture
def dash(settings: Settings, tmp_path: Path) -> Iterator[Dash]:
    yield from test_dashboard.dash.__wrapped__(settings, tmp_path)  # type: ignore[attr-defined]


def user(session: Session, name: str) -> User:
    return session.scalars(select(User).where(User.username == name)).one()


def test_the_spaces_page_shows_use_checkpoints_and_attachments(dash: Dash) -> None:
    def make(session: Session) -> None:
        alice = user(session, "alice")
        blog = apps.create_app(session, alice, "blog", dash.settings)
        db = spaces.create_space(session, dash.adapters, alice, "blog-db", 64 * M)
        spaces.checkpoint_space(session, dash.adapters, db, "before-v2")
        spaces.attach_space(session, db, blog, "data", ["web"])
        spaces.create_space(session, dash.adapters, user(session, "bob"), "bobs-db", 64 * M)
        provider = dash.adapters.space_provider
        assert isinstance(provider, FakeSpaces)
        (provider.tree(db.key) / "file").write_bytes(b"x" * (3 * M))

    dash.query(make)
    dash.sign_in("alice")
    page = dash.client.get("/spaces").get_data(as_text=True)
    assert 'data-space="blog-db"' in page
    assert 'data-space="bobs-db"' not in page  # another user's space is not listed
    assert f'max="{64 * M}"' in page and f'value="{3 * M}"' in page
    assert "3.0 MiB of 64.0 MiB" in page
    assert 'data-checkpoint="before-v2"' in page
    assert 'data-attachment="blog:data"' in page and "(web)" in page
    assert "copies the data to checkpoint and fork" in page  # the fake copies, and says so

    app_page = dash.client.get("/apps/blog").get_data(as_text=True)
    assert 'data-slot="data"' in app_page
    assert "<code>/spaces/data/tree</code>" in app_page
    assert "3.0 MiB of 64.0 MiB" in app_page


def test_an_empty_spaces_page_explains_spaces(dash: Dash) -> None:
    dash.sign_in("bob")
    page = dash.client.get("/spaces").get_data(as_text=True)
    assert "No spaces yet" in page
    assert 'href="/spaces"' in page
