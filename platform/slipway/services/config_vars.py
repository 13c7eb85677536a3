"""Config vars: validating a change (``{"KEY": "value"}``, ``null`` unsets) and applying it.

A change itself is turned into a new release by ``services.releases.change_config``.
"""

from __future__ import annotations

import re

from slipway.services.errors import Invalid

KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MAX_VALUE_LENGTH = 32 * 1024
# Set by the platform inside every instance (services/layout.run_env); an app cannot override.
RESERVED_KEYS = frozenset({"PORT", "HOME", "TEMP_DIR", "TMPDIR"})
RESERVED_PREFIX = "SLIPWAY_"


def validate_changes(changes: object) -> dict[str, str | None]:
    """Check a requested change and return it typed; :class:`Invalid` says what is wrong."""
    if not isinstance(changes, dict) or not changes:
        raise Invalid('Send a JSON object of config vars, like {"KEY": "value"} (null unsets).')
    checked: dict[str, str | None] = {}
    for key, value in changes.items():
        _check_key(key)
        if value is not None and not isinstance(value, str):
            raise Invalid(f"The value of {key} must be a string, or null to unset it.")
        if value is not None and len(value) > MAX_VALUE_LENGTH:
            raise Invalid(f"The value of {key} is longer than {MAX_VALUE_LENGTH} characters.")
        checked[key] = value
    return checked


def _check_key(key: str) -> None:
    if not KEY_RE.match(key):
        raise Invalid(
            f"{key!r} is not a valid config var name: use letters, digits and underscores, "
            "not starting with a digit."
        )
    if key in RESERVED_KEYS or key.startswith(RESERVED_PREFIX):
        raise Invalid(f"{key} is set by the platform and cannot be changed.")


def apply_changes(config: dict[str, str], changes: dict[str, str | None]) -> dict[str, str]:
    """The config after a change: a new dict, the old one untouched."""
    result = dict(config)
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result
