"""Dashboard sign-in: passwords, server-side sessions, and throttling of failed sign-ins.

Passwords are stored only as salted hashes (``werkzeug.security``, scrypt). Tokens stay the way
scripts and the CLI sign in; a password is an alternative for people in a browser.

A signed-in browser holds a random session key in its (signed) cookie; the server keeps only the
key's SHA-256 in ``dashboard_sessions``. Deleting the row ends the session at once, wherever the
cookie was copied: on sign-out, on a password change (the user's other sessions), and with the
user.

Failed sign-ins are recorded under the username tried and under the client's address. Past
:data:`MAX_FAILURES_PER_USERNAME` (or :data:`MAX_FAILURES_PER_ADDRESS`) within
:data:`THROTTLE_WINDOW`, further attempts are refused before any password is checked, with the
same sentence whether or not the user exists.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from slipway.models import DashboardSession, SignInFailure, User
from slipway.models.common import utcnow
from slipway.services.errors import Invalid, NotFound, Throttled, Unauthorized

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 200
SIGN_IN_FAILED = "That username and password do not match."

# Checked when the username is unknown, so a wrong name takes as long as a wrong password.
_DUMMY_HASH = generate_password_hash("not a password of anyone")


def validate_password(password: str) -> None:
    """Raise :class:`Invalid` when a new password is too short or too long."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(f"A password needs at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise Invalid(f"A password can have at most {MAX_PASSWORD_LENGTH} characters.")


def set_password(db: Session, username: str, password: str) -> User:
    """Give a user a new password (the admin's tool; the user's own is :func:`change_password`)."""
    user = db.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"There is no user named {username!r}.")
    validate_password(password)
    user.password_hash = generate_password_hash(password)
    end_sessions(db, user)
    db.flush()
    return user


def authenticate_password(db: Session, username: str, password: str) -> User:
    """The user whose username and password these are; :class:`Unauthorized` otherwise."""
    user = db.scalar(select(User).where(User.username == username.strip()))
    stored = user.password_hash if user is not None else None
    if not check_password_hash(stored or _DUMMY_HASH, password) or user is None or not stored:
        raise Unauthorized(SIGN_IN_FAILED)
    return user


def change_password(
    db: Session, user: User, current: str, new: str, keep_session: str | None = None
) -> None:
    """Change a user's own password; the current one is required when there is one.

    Every other session of the user ends (a browser signed in elsewhere, or a stolen cookie);
    the session ``keep_session`` (the key of the browser that made the change) stays.
    """
    if user.password_hash and not check_password_hash(user.password_hash, current):
        raise Unauthorized("The current password is not right.")
    validate_password(new)
    user.password_hash = generate_password_hash(new)
    end_sessions(db, user, keep=keep_session)
    db.flush()


# ----------------------------------------------------------------------------- sessions

SESSION_LIFETIME = timedelta(days=7)


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def start_session(db: Session, user: User, token_id: int | None = None) -> str:
    """A new session for the user; its key (for the cookie), which is stored only hashed.

    A session started with an API token (``token_id``) ends when that token is revoked.
    """
    expired = utcnow() - SESSION_LIFETIME
    db.execute(delete(DashboardSession).where(DashboardSession.created_at < expired))
    key = secrets.token_urlsafe(32)
    db.add(DashboardSession(user_id=user.id, key_hash=_key_hash(key), token_id=token_id))
    db.flush()
    return key


def session_user(db: Session, key: object, now: datetime | None = None) -> User | None:
    """The user of a live session, or None (unknown, ended or older than its lifetime)."""
    if not isinstance(key, str) or not key:
        return None
    found = db.scalar(select(DashboardSession).where(DashboardSession.key_hash == _key_hash(key)))
    if found is None:
        return None
    if (now or utcnow()) - found.created_at > SESSION_LIFETIME:
        db.delete(found)
        return None
    return db.get(User, found.user_id)


def end_session(db: Session, key: object) -> None:
    """End one session (sign-out); an unknown key is fine."""
    if isinstance(key, str) and key:
        db.execute(delete(DashboardSession).where(DashboardSession.key_hash == _key_hash(key)))


def end_sessions(db: Session, user: User, keep: str | None = None) -> int:
    """End every session of the user but ``keep``; how many ended."""
    query = delete(DashboardSession).where(DashboardSession.user_id == user.id)
    if keep:
        query = query.where(DashboardSession.key_hash != _key_hash(keep))
    result = db.execute(query.execution_options(synchronize_session=False))
    return int(result.rowcount)  # type: ignore[attr-defined]  # a CursorResult for a DELETE


# ----------------------------------------------------------------------------- throttling

THROTTLE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_USERNAME = 5
MAX_FAILURES_PER_ADDRESS = 20
THROTTLED = "Too many failed sign-ins; wait 15 minutes before trying again."


def _throttle_keys(username: str, address: str) -> list[tuple[str, int]]:
    keys = [(f"addr:{address[:150]}", MAX_FAILURES_PER_ADDRESS)]
    name = username.strip().lower()[:150]
    if name:
        keys.append((f"user:{name}", MAX_FAILURES_PER_USERNAME))
    return keys


def check_throttle(db: Session, username: str, address: str, now: datetime | None = None) -> None:
    """Raise :class:`Throttled` while the username or the address has too many recent failures.

    Called before the password is checked, and the same for names that exist and names that
    do not, so the refusal tells nothing about the user.
    """
    since = (now or utcnow()) - THROTTLE_WINDOW
    for key, limit in _throttle_keys(username, address):
        count = db.scalar(
            select(func.count(SignInFailure.id)).where(
                SignInFailure.key == key, SignInFailure.created_at > since
            )
        )
        if (count or 0) >= limit:
            raise Throttled(THROTTLED)


def record_failure(db: Session, username: str, address: str, now: datetime | None = None) -> None:
    """Remember a failed sign-in (and forget failures older than the window)."""
    at = now or utcnow()
    db.execute(delete(SignInFailure).where(SignInFailure.created_at <= at - THROTTLE_WINDOW))
    for key, _limit in _throttle_keys(username, address):
        db.add(SignInFailure(key=key, created_at=at))
    db.flush()


def sign_in(db: Session, username: str, password: str, address: str) -> User:
    """Check the throttle, then the password; a failure is recorded (the caller commits it)."""
    check_throttle(db, username, address)
    try:
        return authenticate_password(db, username, password)
    except Unauthorized:
        record_failure(db, username, address)
        raise
