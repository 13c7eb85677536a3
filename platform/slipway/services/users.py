"""Users and API tokens. A token is shown once, when it is made; only its SHA-256 is stored.

A token is looked up on every request (API, git, dashboard), so a revoked token, or the token of
a deleted user, is refused from the next request on.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from slipway.config import Settings
from slipway.models import ApiToken, App, Space, User
from slipway.models.common import utcnow
from slipway.services.errors import Conflict, Forbidden, Invalid, NotFound

if TYPE_CHECKING:
    from slipway.adapters import Adapters

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


def find_token(session: Session, token: str) -> ApiToken | None:
    """The stored token a plain-text token is (its use noted), or None for an unknown one."""
    if not token:
        return None
    api_token = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if api_token is None:
        return None
    now = utcnow()
    if api_token.last_used_at is None or now - api_token.last_used_at > LAST_USED_RESOLUTION:
        api_token.last_used_at = now
    return api_token


def authenticate_token(session: Session, token: str) -> User | None:
    """The user a token belongs to, or None for an unknown token."""
    api_token = find_token(session, token)
    return api_token.user if api_token is not None else None


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


def delete_user(
    session: Session,
    by: User,
    username: str,
    adapters: Adapters,
    settings: Settings,
    force: bool = False,
) -> list[str]:
    """An admin removes a user: their tokens and dashboard sessions end at once.

    A user who owns apps is refused unless ``force``, which destroys the apps too (their names
    are returned). The last admin, and the admin asking, cannot be removed.
    """
    from slipway.services import apps

    if not by.is_admin:
        raise Forbidden("Only an admin can delete users.")
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"There is no user named {username!r}.")
    if user.id == by.id:
        raise Conflict("You cannot delete yourself; another admin can.")
    admins = session.scalar(select(func.count(User.id)).where(User.is_admin.is_(True))) or 0
    if user.is_admin and admins <= 1:
        raise Conflict(f"{username} is the last admin; make another admin first.")
    owned = list(session.scalars(select(App).where(App.owner_id == user.id).order_by(App.name)))
    if owned and not force:
        names = ", ".join(app.name for app in owned)
        raise Conflict(
            f"{username} owns {len(owned)} app(s) ({names}); destroy them first, "
            "or force the deletion to destroy them too."
        )
    # Spaces hold data that outlives apps: never deleted along with their owner.
    kept = list(session.scalars(select(Space.name).where(Space.owner_id == user.id)))
    if kept:
        raise Conflict(
            f"{username} owns {len(kept)} space(s) ({', '.join(sorted(kept))}); "
            "delete them first with spaces:delete."
        )
    for app in owned:
        apps.delete_app(session, app, adapters, settings)
    session.delete(user)
    session.flush()
    return [app.name for app in owned]


# ----------------------------------------------------------------------------- tokens


def list_tokens(session: Session, by: User, username: str | None = None) -> list[ApiToken]:
    """The tokens of ``by`` (or, for an admin, of the user named), oldest first."""
    owner = by
    if username is not None and username != by.username:
        if not by.is_admin:
            raise Forbidden("Only an admin can see another user's tokens.")
        found = session.scalar(select(User).where(User.username == username))
        if found is None:
            raise NotFound(f"There is no user named {username!r}.")
        owner = found
    query = select(ApiToken).where(ApiToken.user_id == owner.id).order_by(ApiToken.id)
    return list(session.scalars(query))


def revoke_token(session: Session, by: User, token_id: int) -> ApiToken:
    """Delete a token (one's own; an admin's may be anyone's): it stops working at once."""
    token = session.get(ApiToken, token_id)
    if token is None or not (by.is_admin or token.user_id == by.id):
        raise NotFound(f"There is no token with id {token_id}.")
    session.delete(token)
    session.flush()
    return token
