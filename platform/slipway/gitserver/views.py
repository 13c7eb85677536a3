"""``/git/<app>.git/...``: smart HTTP git, authenticated with the user's API token.

Basic auth with any username and the token as the password. A wrong token is refused before the
app is looked up, so the answer never tells whether an app exists; a valid token for an app the
user cannot see gets the same 404 as a missing app.
"""

from __future__ import annotations

import logging
import re
from contextlib import ExitStack

from flask import Blueprint, Response, jsonify, request

from slipway.api.context import db, settings
from slipway.gitserver import backend, repos
from slipway.gitserver.handoff import hook_environment
from slipway.models import User
from slipway.services import apps, users
from slipway.services.errors import NotFound, SlipwayError

log = logging.getLogger(__name__)

REALM = 'Basic realm="Slipway git", charset="UTF-8"'
RECEIVE_PACK = "git-receive-pack"
# The hook gives up on a deploy after the longest build plus starting instances and this margin;
# git itself is cut off PUSH_TIMEOUT_MARGIN later, so the hook's clear line comes first.
HOOK_TIMEOUT_MARGIN = 300
PUSH_TIMEOUT_MARGIN = 300

# The paths git's smart and dumb HTTP protocols ask for below a repository; anything else (such
# as ``..``) is refused before git sees it, with the same 404 as a missing repository.
GIT_PATH_RE = re.compile(
    r"^(?:HEAD|info/refs|git-(?:upload|receive)-pack"
    r"|objects/info/(?:alternates|http-alternates|packs)"
    r"|objects/[0-9a-f]{2}/[0-9a-f]{38,62}"
    r"|objects/pack/pack-[0-9a-f]{40,64}\.(?:pack|idx))$"
)
NOT_FOUND = "Repository not found."

bp = Blueprint("git", __name__, url_prefix="/git")


def _refuse(status: int, sentence: str) -> Response:
    response = jsonify(error=sentence)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = REALM
    return response


def _basic_auth_token() -> str | None:
    auth = request.authorization
    if auth is None or auth.type != "basic" or not auth.password:
        return None
    return auth.password.strip()


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
    token = _basic_auth_token()
    user = users.authenticate_token(db(), token) if token else None
    if token is None or user is None:
        return _refuse(401, "Sign in with your API token as the password.")
    if not apps.NAME_RE.match(app) or not GIT_PATH_RE.match(rest):
        return _refuse(404, NOT_FOUND)
    try:
        found = apps.get_app(db(), user, app)
    except NotFound:
        return _refuse(404, NOT_FOUND)
    config = settings()
    cgi_request = _cgi_request(found.name, rest, user)
    app_name, branch = found.name, found.deploy_branch
    db().commit()  # the hook calls the API, which writes; hold no transaction while it runs
    repo_root = str(repos.ensure_repo(config, app_name).parent)
    deploy_timeout = config.build_timeout + 4 * config.start_timeout + HOOK_TIMEOUT_MARGIN
    pushing = request.method == "POST" and rest == RECEIVE_PACK
    locks = ExitStack()
    try:
        if pushing:
            locks.enter_context(repos.push_lock(config, app_name, config.deploy_lock_timeout))
        answer = backend.run_http_backend(
            cgi_request,
            repo_root,
            hook_environment(config, app_name, branch, token, deploy_timeout) if pushing else {},
            deploy_timeout + PUSH_TIMEOUT_MARGIN,
            on_finish=locks.close,
        )
    except SlipwayError as error:
        locks.close()
        return _refuse(409, str(error))
    except backend.NoAnswer:
        locks.close()
        log.exception("git http-backend gave no answer to %s %s", request.method, rest)
        return _refuse(502, "git could not answer this request; the server log says why.")
    except BaseException:
        locks.close()
        raise
    response = Response(answer.body, status=answer.status, headers=answer.headers)
    response.headers["X-Accel-Buffering"] = "no"  # let remote: lines through a proxy live
    return response
