"""Password sign-in for the dashboard: set, check and change a user's password.

Passwords are stored only as salted hashes (``werkzeug.security``, scrypt). Tokens stay the way
scripts and the CLI sign in; a password is an alternative for people in a browser.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from slipway.models import User
from slipway.services.errors import Invalid, NotFound, Unauthorized

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
    db.flush()
    return user


def authenticate_password(db: Session, username: str, password: str) -> User:
    """The user whose username and password these are; :class:`Unauthorized` otherwise."""
    user = db.scalar(select(User).where(User.username == username.strip()))
    stored = user.password_hash if user is not None else None
    if not check_password_hash(stored or _DUMMY_HASH, password) or user is None or not stored:
        raise Unauthorized(SIGN_IN_FAILED)
    return user


def change_password(db: Session, user: User, current: str, new: str) -> None:
    """Change a user's own password; the current one is required when there is one."""
    if user.password_hash and not check_password_hash(user.password_hash, current):
        raise Unauthorized("The current password is not right.")
    validate_password(new)
    user.password_hash = generate_password_hash(new)
    db.flush()
