"""Signing in and out, the sign-in requirement on every page, CSRF checks, changing a password."""

from __future__ import annotations

from typing import Any

from flask import (
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.blueprints import BlueprintSetupState
from flask.sansio.app import App
from werkzeug.wrappers import Response

from slipway.dashboard import bp, security
from slipway.dashboard.context import db, settings_of, transactional
from slipway.models import User
from slipway.services import sessions, users
from slipway.services.errors import SlipwayError, Throttled

PUBLIC_ENDPOINTS = frozenset({"dashboard.sign_in", "dashboard.static"})
SESSION_LIFETIME = sessions.SESSION_LIFETIME


@bp.record_once
def _configure_app(state: BlueprintSetupState) -> None:
    configure_app(state.app)


def configure_app(app: App) -> None:
    """Session cookie flags and the secret key (kept in the data directory, made once)."""
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = security.load_secret_key(settings_of(app).data_dir)
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_NAME"] = "slipway_session"
    app.config["PERMANENT_SESSION_LIFETIME"] = SESSION_LIFETIME


@bp.context_processor
def _template_globals() -> dict[str, Any]:
    return {"csrf_token": security.csrf_token, "current_user": g.get("dashboard_user")}


@bp.before_request
def _require_sign_in() -> Response | None:
    security.check_csrf()
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    user = sessions.session_user(db(), security.session_key())
    if user is None:
        security.sign_out()
        return redirect(url_for("dashboard.sign_in", next=request.full_path.rstrip("?")))
    g.dashboard_user = user
    return None


def current_user() -> User:
    """The signed-in user (every page but sign-in has one)."""
    user: User = g.dashboard_user
    return user


def safe_next(target: str | None) -> str:
    """Where to go after signing in: only a path on this site, never another host."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return url_for("dashboard.apps")


@bp.route("/signin", methods=["GET", "POST"])
@transactional
def sign_in() -> Response | str:
    next_url = request.args.get("next")
    if request.method == "GET":
        if sessions.session_user(db(), security.session_key()) is not None:
            return redirect(safe_next(next_url))
        return render_template("dashboard/sign_in.html", next=next_url, username="")
    user, token_id, status = _authenticate()
    if user is None:
        # The failure's record must outlast this error answer (which rolls back): the throttle
        # counts it.
        db().commit()
        username = request.form.get("username", "")
        page = render_template("dashboard/sign_in.html", next=next_url, username=username)
        return page, status  # type: ignore[return-value]
    security.sign_in(sessions.start_session(db(), user, token_id))
    return redirect(safe_next(next_url))


def _authenticate() -> tuple[User | None, int | None, int]:
    """The user named by the form (password or token) and the token used, if one; or why not:
    flashed, with a status."""
    form = request.form
    address = request.remote_addr or ""
    try:
        if form.get("method") == "token":
            sessions.check_throttle(db(), "", address)
            token = users.find_token(db(), form.get("token", "").strip())
            if token is None:
                sessions.record_failure(db(), "", address)
                flash("That token is not valid.", "error")
                return None, None, 401
            return token.user, token.id, 200
        user = sessions.sign_in(db(), form.get("username", ""), form.get("password", ""), address)
        return user, None, 200
    except Throttled as exc:
        flash(str(exc), "error")
        return None, None, 429
    except SlipwayError as exc:
        flash(str(exc), "error")
        return None, None, 401


@bp.route("/signout", methods=["POST"])
@transactional
def sign_out() -> Response:
    sessions.end_session(db(), security.session_key())
    security.sign_out()
    flash("You are signed out.", "info")
    return redirect(url_for("dashboard.sign_in"))


@bp.route("/account/password", methods=["GET", "POST"])
@transactional
def change_password() -> Response | str:
    user = current_user()
    if request.method == "POST":
        form = request.form
        if form.get("new", "") != form.get("confirm", ""):
            flash("The two new passwords are not the same.", "error")
        else:
            sessions.change_password(
                db(),
                user,
                form.get("current", ""),
                form.get("new", ""),
                keep_session=security.session_key(),
            )
            flash("Your password is saved.", "success")
            return redirect(url_for("dashboard.apps"))
    return render_template(
        "dashboard/change_password.html",
        has_password=bool(user.password_hash),
        min_length=sessions.MIN_PASSWORD_LENGTH,
    )
