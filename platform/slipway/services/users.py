"""Users and API tokens. A token is shown once, when it is made; only its SHA-256 is stored."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from slipway.models import ApiToken, User
from slipway.models.common import utcnow
from slipway.services.errors import Conflict, Forbidden, Invalid

ADMIN_USERNAME = "admin"
TOKEN_PREFIX = "slw_"
USERNAME_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
# Writing last_used_at on every request would turn each read into a write; a minute is enough.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(session: Session, username: str, is_admin: bool = False) -> User:
    """A new user; :class:`Invalid` for a bad name, :class:`Conflict` when it is taken."""
    if not USERNAME_RE.match(username):
        raise Invalid(
            "A username starts with a lowercase letter and has at most 64 lowercase letters, "
            "digits, dots, dashes or underscores."
        )
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"The username {username!r} is taken.")
    user = User(username=username, is_admin=is_admin)
    try:
        session.add(user)
        session.flush()
    except IntegrityError as exc:  # another request took the name between the check and here
        raise Conflict(f"The username {username!r} is taken.") from exc
    return user


def create_token(session: Session, user: User, name: str = "") -> str:
    """Make a token for the user and return it in plain text (the only time it is seen)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user=user, token_hash=hash_token(token), name=name))
    session.flush()
    return token


def authenticate_token(session: Session, token: str) -> User | None:
    """The user a token belongs to, or None for an unknown token."""
    if not token:
        return None
    api_token = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if api_token is None:
        return None
    now = utcnow()
    if api_token.last_used_at is None or now - api_token.last_used_at > LAST_USED_RESOLUTION:
        api_token.last_used_at = now
    return api_token.user


def ensure_admin(session: Session) -> str | None:
    """On first start, create the ``admin`` user and return its token; afterwards None."""
    if session.scalar(select(User.id).where(User.username == ADMIN_USERNAME)) is not None:
        return None
    admin = create_user(session, ADMIN_USERNAME, is_admin=True)
    return create_token(session, admin, name="admin")


# ----------------------------------------------------------------------------- managing users


def add_user(
    session: Session, by: User, username: object, is_admin: object = False
) -> tuple[User, str]:
    """An admin makes a user and its first token, returned once in plain text."""
    if not by.is_admin:
        raise Forbidden("Only an admin can create users.")
    if not isinstance(username, str):
        raise Invalid("username is required: a lowercase name such as 'alice'.")
    if not isinstance(is_admin, bool):
        raise Invalid("is_admin is true or false.")
    user = create_user(session, username, is_admin)
    return user, create_token(session, user, name="first token")


def list_users(session: Session, by: User) -> list[User]:
    if not by.is_admin:
        raise Forbidden("Only an admin can list users.")
    return list(session.scalars(select(User).order_by(User.username)))
