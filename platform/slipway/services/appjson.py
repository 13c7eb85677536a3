"""app.json: the parts Slipway uses (formation, predeploy/postdeploy scripts, web health checks,
spaces).

The file is the app's own, so it is checked strictly where it matters: a value of the wrong
shape fails the build with one sentence naming the key. Keys Slipway does not use are ignored,
each with a warning line for the build log, so an app.json written for another platform works.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.models import App, Space
from slipway.models.app import DEPLOY_STRATEGIES
from slipway.services.archives import PROCESS_TYPE
from slipway.services.errors import Conflict, Invalid

if TYPE_CHECKING:
    from slipway.adapters import Adapters

MAX_PER_TYPE = 10  # the same cap as scaling by hand (instances.MAX_PER_TYPE)
MAX_SCRIPT = 16 * 1024
# Heroku's descriptive keys: nothing to do with them, and nothing to warn about.
DESCRIPTIVE_KEYS = {
    "name",
    "description",
    "keywords",
    "website",
    "repository",
    "logo",
    "success_url",
}
USED_KEYS = {"formation", "scripts", "healthchecks", "spaces", "deploy_strategy"}
SCRIPT_KEYS = ("predeploy", "postdeploy")
CHECK_DEFAULTS = {"timeout": 5.0, "attempts": 3, "wait": 1.0, "initialDelay": 0.0}
CHECK_LIMITS = {"timeout": (1, 300), "attempts": (1, 60), "wait": (0, 60), "initialDelay": (0, 300)}
CHECK_KEYS = {"type", "name", "path", *CHECK_DEFAULTS}


@dataclass(frozen=True)
class HealthCheck:
    """A startup check of every new web instance: GET ``path`` must answer 2xx."""

    path: str
    timeout: float = 5.0  # seconds one attempt may take
    attempts: int = 3
    wait: float = 1.0  # seconds between attempts
    initial_delay: float = 0.0  # seconds to wait before the first attempt

    def describe(self) -> str:
        return f"GET {self.path} ({self.attempts} attempts of {self.timeout:g} s)"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HealthCheck:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass(frozen=True)
class SpaceRequest:
    """``"spaces": {"data": {"size": "1G"}}``: a slot a deploy fills with ``<app>-<slot>``."""

    slot: str
    size: int | None = None  # None: the platform's default size
    process_types: tuple[str, ...] = ()  # empty: every process type


@dataclass(frozen=True)
class AppJson:
    formation: dict[str, int] = field(default_factory=dict)
    predeploy: str | None = None
    postdeploy: str | None = None
    web_checks: tuple[HealthCheck, ...] = ()
    warnings: tuple[str, ...] = ()
    spaces: tuple[SpaceRequest, ...] = ()
    deploy_strategy: str | None = None  # "rolling" or "stop-first"


def parse(data: dict[str, Any]) -> AppJson:
    """Check a parsed app.json object; raise Invalid naming the first thing that is wrong."""
    warnings: list[str] = []
    for key in sorted(set(data) - USED_KEYS - DESCRIPTIVE_KEYS):
        warnings.append(f"app.json key {key!r} is not used by Slipway; ignored.")
    formation = _formation(data.get("formation"), warnings)
    predeploy, postdeploy = _scripts(data.get("scripts"), warnings)
    checks = _healthchecks(data.get("healthchecks"), warnings)
    spaces = _spaces(data.get("spaces"), warnings)
    strategy = _deploy_strategy(data.get("deploy_strategy"))
    return AppJson(formation, predeploy, postdeploy, checks, tuple(warnings), spaces, strategy)


def _deploy_strategy(value: object) -> str | None:
    if value is not None and value not in DEPLOY_STRATEGIES:
        raise Invalid(
            f'app.json "deploy_strategy" is {" or ".join(DEPLOY_STRATEGIES)}, not {value!r}.'
        )
    return value


# ----------------------------------------------------------------------------- formation


def _formation(value: object, warnings: list[str]) -> dict[str, int]:
    """``{"web": {"quantity": 2}}`` (Heroku) or ``{"web": 2}``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Invalid('app.json "formation" must be an object like {"web": {"quantity": 1}}.')
    formation = {}
    for process_type, entry in value.items():
        where = f'app.json "formation.{process_type}"'
        if not PROCESS_TYPE.match(process_type):
            raise Invalid(f"{where}: {process_type!r} is not a valid process type name.")
        if process_type == "release":
            raise Invalid(f"{where}: the release process runs once per release; it has no count.")
        if isinstance(entry, dict):
            for key in sorted(set(entry) - {"quantity"}):
                warnings.append(f"{where} key {key!r} is not used by Slipway; ignored.")
            entry = entry.get("quantity", 1)
        formation[process_type] = _count(entry, where)
    return formation


def _count(value: object, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_PER_TYPE:
        raise Invalid(f"{where}: the quantity must be a whole number from 0 to {MAX_PER_TYPE}.")
    return value


# ----------------------------------------------------------------------------- scripts


def _scripts(value: object, warnings: list[str]) -> tuple[str | None, str | None]:
    if value is None:
        return None, None
    if not isinstance(value, dict):
        raise Invalid('app.json "scripts" must be an object like {"postdeploy": "command"}.')
    for key in sorted(set(value) - set(SCRIPT_KEYS)):
        warnings.append(f'app.json "scripts.{key}" is not used by Slipway; ignored.')
    found = [_script(value.get(key), key) for key in SCRIPT_KEYS]
    return found[0], found[1]


def _script(value: object, key: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_SCRIPT:
        raise Invalid(f'app.json "scripts.{key}" must be a command line (a non-empty string).')
    if "\0" in value:
        raise Invalid(f'app.json "scripts.{key}" must not contain NUL bytes.')
    return value


# ----------------------------------------------------------------------------- health checks


def _healthchecks(value: object, warnings: list[str]) -> tuple[HealthCheck, ...]:
    """``{"web": [{"type": "startup", "path": "/health", "timeout": 5, "attempts": 3}]}``."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise Invalid('app.json "healthchecks" must be an object like {"web": [{"path": "/"}]}.')
    for key in sorted(set(value) - {"web"}):
        warnings.append(f'app.json "healthchecks.{key}" ignored: only web is checked.')
    entries = value.get("web", [])
    if isinstance(entries, dict):
        entries = [entries]
    if not isinstance(entries, list):
        raise Invalid('app.json "healthchecks.web" must be a list of checks.')
    checks = []
    for number, entry in enumerate(entries):
        check = _check(entry, f'app.json "healthchecks.web[{number}]"', warnings)
        if check is not None:
            checks.append(check)
    return tuple(checks)


def _check(entry: object, where: str, warnings: list[str]) -> HealthCheck | None:
    if not isinstance(entry, dict):
        raise Invalid(f"{where} must be an object with a path.")
    kind = entry.get("type", "startup")
    if kind != "startup":
        warnings.append(f"{where} of type {kind!r} ignored: only startup checks run.")
        return None
    for key in sorted(set(entry) - CHECK_KEYS):
        warnings.append(f"{where} key {key!r} is not used by Slipway; ignored.")
    path = entry.get("path")
    if not isinstance(path, str) or not path.startswith("/") or any(c.isspace() for c in path):
        raise Invalid(f'{where} needs a "path" starting with / (such as "/health").')
    numbers = {key: _number(entry, key, where) for key in CHECK_DEFAULTS}
    return HealthCheck(
        path=path,
        timeout=float(numbers["timeout"]),
        attempts=int(numbers["attempts"]),
        wait=float(numbers["wait"]),
        initial_delay=float(numbers["initialDelay"]),
    )


def _number(entry: dict[str, Any], key: str, where: str) -> float:
    value = entry.get(key, CHECK_DEFAULTS[key])
    low, high = CHECK_LIMITS[key]
    whole = key == "attempts"
    kinds = (int,) if whole else (int, float)
    if not isinstance(value, kinds) or isinstance(value, bool) or not low <= value <= high:
        what = "a whole number" if whole else "a number of seconds"
        raise Invalid(f'{where} "{key}" must be {what} from {low} to {high}.')
    return float(value)


# ----------------------------------------------------------------------------- spaces

SPACE_KEYS = {"size", "process_types"}


def _spaces(value: object, warnings: list[str]) -> tuple[SpaceRequest, ...]:
    """``{"data": {"size": "1G", "process_types": ["web"]}}``; ``{}`` per slot takes defaults."""
    from slipway.services import spaces  # late: spaces -> events -> tasks -> builds -> here

    if value is None:
        return ()
    if not isinstance(value, dict):
        raise Invalid('app.json "spaces" must be an object like {"data": {"size": "1G"}}.')
    requests = []
    for slot, entry in value.items():
        where = f'app.json "spaces.{slot}"'
        try:
            spaces.check_slot(slot)
        except Invalid as exc:
            raise Invalid(f"{where}: {exc}") from None
        if entry is None:
            entry = {}
        if not isinstance(entry, dict):
            raise Invalid(f'{where} must be an object like {{"size": "1G"}}.')
        for key in sorted(set(entry) - SPACE_KEYS):
            warnings.append(f"{where} key {key!r} is not used by Slipway; ignored.")
        size = entry.get("size")
        types = entry.get("process_types", [])
        if not isinstance(types, list) or not all(
            isinstance(t, str) and PROCESS_TYPE.match(t) and t != "release" for t in types
        ):
            raise Invalid(f'{where}: "process_types" must be a list of process types like ["web"].')
        try:
            checked = None if size is None else spaces.parse_space_size(size, 0)
        except Invalid as exc:
            raise Invalid(f"{where}: {exc}") from None
        requests.append(SpaceRequest(slot, checked, tuple(sorted(set(types)))))
    return tuple(requests)


# ----------------------------------------------------------------------------- applying


def merge_formation(current: dict[str, int], wanted: dict[str, int], first: bool) -> dict[str, int]:
    """The app's formation after a deploy with app.json ``wanted`` counts.

    On the app's first deploy app.json decides (the app's formation is only the default then);
    afterwards it only fills in process types the app has no count for, so ``slipway scale``
    always wins.
    """
    if first:
        return {**current, **wanted}
    return {**wanted, **current}


def apply_deploy_strategy(
    app: App, wanted: str | None, first: bool, log: Callable[[str], None]
) -> None:
    """Like the formation: app.json's strategy is the app's on its first deploy; afterwards
    ``apps:update --deploy-strategy`` decides, and a different wish is only noted."""
    if wanted is None or wanted == app.deploy_strategy:
        return
    if first:
        app.deploy_strategy = wanted
        log(f"-----> Deploy strategy {wanted} (app.json)")
    else:
        log(
            f"       note: app.json asks for the deploy strategy {wanted}; the app keeps "
            f"{app.deploy_strategy} (apps:update --deploy-strategy changes it)"
        )


def ensure_spaces(
    session: Session,
    adapters: Adapters,
    app: App,
    requests: tuple[SpaceRequest, ...],
    default_size: int,
    log: Callable[[str], None],
) -> None:
    """Give each requested slot that has no space yet the space ``<app>-<slot>``: made new, or
    an unattached one of that name the app's owner has. Slots with a space are left alone:
    app.json never changes an attachment."""
    from slipway.services import spaces

    attached = {attachment.slot for attachment in spaces.attachments_of(session, app)}
    for request in requests:
        if request.slot in attached:
            continue
        name = f"{app.name}-{request.slot}"
        space = session.scalar(select(Space).where(Space.name == name))
        if space is None:
            size = request.size or default_size
            origin = f"app.json of {app.name}"
            space = spaces.create_space(session, adapters, app.owner, name, size, origin)
            log(f"-----> Space {name} created ({size / 1024**2:.0f} MB)")
        elif space.owner_id != app.owner_id or space.attachments:
            why = "belongs to another user" if space.owner_id != app.owner_id else "is in use"
            raise Conflict(
                f'app.json "spaces.{request.slot}": a space named {name} exists already and '
                f"{why}; attach another space to the slot with spaces:attach."
            )
        else:
            log(f"-----> Using the existing space {name}")
        spaces.attach_space(session, space, app, request.slot, list(request.process_types))
        session.commit()
        only = f" (for {', '.join(request.process_types)})" if request.process_types else ""
        log(f"       {name} is mounted at /spaces/{request.slot}/tree{only}")
