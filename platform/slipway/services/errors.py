"""Domain errors. Services raise these; the API maps them to HTTP statuses in one place."""

from __future__ import annotations


class SlipwayError(Exception):
    """Base of every domain error; the message is one clear sentence for the user."""


class NotFound(SlipwayError):
    pass


class Invalid(SlipwayError):
    pass


class Conflict(SlipwayError):
    pass


class Unauthorized(SlipwayError):
    pass


class Forbidden(SlipwayError):
    pass


class TooLarge(SlipwayError):
    pass


class Throttled(SlipwayError):
    """Too many attempts (failed sign-ins) in a short time; try again later."""


class Unavailable(SlipwayError):
    """An outside system (Docker, Redis, nginx) cannot be reached."""
