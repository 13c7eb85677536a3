"""Every error the API answers, mapped to JSON ``{"error": "<one clear sentence>"}`` here only."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, request
from kombu.exceptions import OperationalError as BrokerUnavailable
from werkzeug.exceptions import HTTPException

from slipway.runtime.base import RuntimeUnavailable
from slipway.services import errors

log = logging.getLogger(__name__)

STATUS = {
    errors.Invalid: 422,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.TooLarge: 413,
    errors.Throttled: 429,
    errors.Unavailable: 503,
}

# Sentences for the HTTP errors Flask raises itself (unknown URL, wrong method, bad JSON...).
HTTP_SENTENCES = {
    400: "The request could not be understood; send JSON with Content-Type: application/json.",
    404: "There is no such API endpoint.",
    405: "This endpoint does not accept that method.",
    413: "The request body is too large.",
    415: "The request has a content type this endpoint does not accept.",
}


def error_response(message: str, status: int) -> tuple[Response, int]:
    response = jsonify(error=message)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="slipway"'
    return response, status


def handle_domain_error(error: errors.SlipwayError) -> tuple[Response, int]:
    status = next((code for kind, code in STATUS.items() if isinstance(error, kind)), 400)
    return error_response(str(error), status)


def handle_http_error(error: HTTPException) -> Response | HTTPException | tuple[Response, int]:
    if not request.path.startswith("/api/"):
        return error  # the dashboard and git answer their own way
    status = error.code or 500
    return error_response(HTTP_SENTENCES.get(status, error.description or error.name), status)


def handle_runtime_down(error: RuntimeUnavailable) -> tuple[Response, int]:
    return error_response(str(error) or "The container engine cannot be reached.", 503)


def handle_broker_down(error: BrokerUnavailable) -> tuple[Response, int]:
    log.error("cannot send a task: %s", error)
    return error_response(
        "The task queue (Redis) cannot be reached, so the work was not started; try again.", 503
    )


def handle_unexpected(error: Exception) -> tuple[Response, int]:
    log.exception("unexpected error in %s %s", request.method, request.path)
    return error_response("Something went wrong inside Slipway; the server log says what.", 500)


def init_app(app: Flask) -> None:
    app.register_error_handler(errors.SlipwayError, handle_domain_error)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(RuntimeUnavailable, handle_runtime_down)
    app.register_error_handler(BrokerUnavailable, handle_broker_down)
    app.register_error_handler(Exception, handle_unexpected)
