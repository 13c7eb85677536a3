"""Sign-in state, CSRF tokens and the secret key of the dashboard's session cookie.

The secret key is generated once and kept in the data directory (mode 0600), so sessions survive
a restart and every worker process of the same host signs cookies with the same key.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from flask import abort, request, session

SECRET_KEY_FILE = "dashboard-secret-key"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SESSION_KEY = "session_key"


def load_secret_key(data_dir: Path) -> str:
    """The dashboard's secret key, created on first use with mode 0600."""
    path = data_dir / SECRET_KEY_FILE
    if not path.exists():
        _create_secret_file(path)
    key = path.read_text().strip()
    if len(key) < 32:
        raise RuntimeError(f"{path} is damaged; delete it and restart to make a new key")
    return key


def _create_secret_file(path: Path) -> None:
    # Write a private temporary file, then link it into place: when two workers start at once,
    # exactly one link wins and both read the same key.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)


def csrf_token() -> str:
    """The current session's CSRF token (made on first use); forms carry it in a hidden field."""
    token = session.get(CSRF_FIELD)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[CSRF_FIELD] = token
    return token


def check_csrf() -> None:
    """Reject (400) a state-changing request whose CSRF token is missing or wrong."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    expected = session.get(CSRF_FIELD)
    sent = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    if not isinstance(expected, str) or not hmac.compare_digest(expected, sent):
        abort(400, description="This form has expired or did not come from Slipway. Try again.")


def sign_in(session_key: str) -> None:
    """Start a fresh signed-in session (a new CSRF token too, against session fixation).

    The cookie holds only the key of a server-side session (``services/sessions.py``): ending
    that session on the server signs the cookie out, wherever it was copied.
    """
    session.clear()
    session[SESSION_KEY] = session_key
    session.permanent = True
    csrf_token()


def sign_out() -> None:
    session.clear()


def session_key() -> str | None:
    value = session.get(SESSION_KEY)
    return value if isinstance(value, str) and value else None
