"""Users and API tokens: tokens are returned once and stored only as hashes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.config import Settings
from slipway.models import ApiToken, User
from slipway.services import users
from slipway.services.errors import Conflict, Invalid
from tests.fakes import migrated_session


@pytest.fixture
def session(settings: Settings) -> Iterator[Session]:
    with migrated_session(settings) as session:
        yield session


def test_a_token_is_stored_hashed_and_authenticates_its_user(session: Session) -> None:
    alice = users.create_user(session, "alice")
    token = users.create_token(session, alice, name="laptop")
    session.commit()

    stored = session.scalars(select(ApiToken)).one()
    assert token not in stored.token_hash
    assert stored.token_hash == users.hash_token(token)
    assert users.authenticate_token(session, token) is alice
    assert stored.last_used_at is not None


@pytest.mark.parametrize("token", ["", "slw_nope", "Bearer x"])
def test_unknown_tokens_authenticate_nobody(session: Session, token: str) -> None:
    users.create_token(session, users.create_user(session, "alice"))
    assert users.authenticate_token(session, token) is None


def test_two_tokens_are_never_the_same(session: Session) -> None:
    alice = users.create_user(session, "alice")
    assert users.create_token(session, alice) != users.create_token(session, alice)


def test_a_taken_username_is_a_conflict(session: Session) -> None:
    users.create_user(session, "alice")
    with pytest.raises(Conflict, match="taken"):
        users.create_user(session, "alice")


@pytest.mark.parametrize("name", ["", "Alice", "1bob", "a b", "x" * 70])
def test_bad_usernames_are_refused(session: Session, name: str) -> None:
    with pytest.raises(Invalid, match="username"):
        users.create_user(session, name)


def test_ensure_admin_creates_the_admin_once(session: Session) -> None:
    token = users.ensure_admin(session)
    session.commit()
    assert token is not None
    admin = users.authenticate_token(session, token)
    assert admin is not None and admin.is_admin and admin.username == "admin"
    assert users.ensure_admin(session) is None
    assert len(session.scalars(select(User)).all()) == 1


def test_a_revoked_token_and_a_deleted_users_token_authenticate_nobody(
    session: Session, settings: Settings
) -> None:
    from tests.fakes import fake_adapters

    root = users.create_user(session, "root", is_admin=True)
    alice = users.create_user(session, "alice")
    first, second = users.create_token(session, alice), users.create_token(session, alice)
    (token_id, _) = [t.id for t in users.list_tokens(session, alice)]
    users.revoke_token(session, alice, token_id)
    assert users.authenticate_token(session, first) is None
    assert users.authenticate_token(session, second) is alice
    users.delete_user(session, root, "alice", fake_adapters(settings.data_dir / "a"), settings)
    assert users.authenticate_token(session, second) is None
    assert session.scalars(select(ApiToken)).all() == []
