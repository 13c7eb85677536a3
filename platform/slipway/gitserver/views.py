"""``/git/<app>.git/...``: smart HTTP git, authenticated with the user's API token.

Basic auth with any username and the token as the password. A wrong token is refused before the
app is looked up, so the answer never tells whether an app exists; a valid token for an app the
user cannot see gets the same 404 as a missing app.
"""

from __future__ import annotations

from contextlib import ExitStack

from flask import Blueprint, Response, jsonify, request

from slipway.api.context import db, settings
from slipway.gitserver import backend, repos
from slipway.gitserver.handoff import hook_environment
from slipway.models import User
from slipway.services import apps, users
from slipway.services.errors import NotFound, SlipwayError

REALM = 'Basic realm="Slipway git", charset="UTF-8"'
RECEIVE_PACK = "git-receive-pack"
# Past this, a push is cut off: the longest build plus starting instances, with room to spare.
PUSH_TIMEOUT_MARGIN = 600

bp = Blueprint("git", __name__, url_prefix="/git")


def _refuse(status: int, sentence: str) -> Response:
    response = jsonify(error=sentence)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = REALM
    return response


def _user_from_basic_auth() -> User | None:
    auth = request.authorization
    if auth is None or auth.type != "basic" or not auth.password:
        return None
    return users.authenticate_token(db(), auth.password.strip())


def _cgi_request(app: str, rest: str, user: User) -> backend.CgiRequest:
    return backend.CgiRequest(
        method=request.method,
        path_info=f"/{app}.git/{rest}",
        query_string=request.query_string.decode("latin-1"),
        content_type=request.headers.get("Content-Type", ""),
        content_length=request.content_length,
        content_encoding=request.headers.get("Content-Encoding", ""),
        git_protocol=request.headers.get("Git-Protocol", ""),
        remote_user=user.username,
        remote_addr=request.remote_addr or "",
        body=request.stream,
    )


@bp.route("/<app>.git/<path:rest>", methods=["GET", "POST"])
def git_http(app: str, rest: str) -> Response:
    user = _user_from_basic_auth()
    if user is None:
        return _refuse(401, "Sign in with your API token as the password.")
    try:
        found = apps.get_app(db(), user, app)
    except NotFound:
        return _refuse(404, "Repository not found.")
    config = settings()
    user_id, app_name = user.id, found.name
    db().commit()  # the hook writes to the database; hold no transaction while it runs
    repo_root = str(repos.ensure_repo(config, app_name).parent)
    timeout = config.build_timeout + 4 * config.start_timeout + PUSH_TIMEOUT_MARGIN
    locks = ExitStack()
    try:
        if request.method == "POST" and rest == RECEIVE_PACK:
            locks.enter_context(repos.push_lock(config, app_name, config.deploy_lock_timeout))
        answer = backend.run_http_backend(
            _cgi_request(app_name, rest, user),
            repo_root,
            hook_environment(config, app_name, user_id),
            timeout,
            on_finish=locks.close,
        )
    except SlipwayError as error:
        locks.close()
        return _refuse(409, str(error))
    except BaseException:
        locks.close()
        raise
    response = Response(answer.body, status=answer.status, headers=answer.headers)
    response.headers["X-Accel-Buffering"] = "no"  # let remote: lines through a proxy live
    return response
