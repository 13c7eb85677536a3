"""app.json: what Slipway takes from it, what it refuses (one sentence), what it ignores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from slipway.services import appjson
from slipway.services.appjson import AppJson, HealthCheck
from slipway.services.builds import read_app_json
from slipway.services.errors import Invalid

FULL = {
    "name": "hello",
    "description": "A greeting",
    "formation": {"web": {"quantity": 2, "size": "basic"}, "worker": 1},
    "scripts": {"predeploy": "python manage.py migrate", "postdeploy": "python seed.py"},
    "healthchecks": {
        "web": [
            {"type": "startup", "name": "ready", "path": "/health", "timeout": 5, "attempts": 3},
            {"path": "/", "wait": 0.5, "initialDelay": 2},
        ]
    },
}


def test_a_full_app_json() -> None:
    parsed = appjson.parse(FULL)
    assert parsed.formation == {"web": 2, "worker": 1}
    assert parsed.predeploy == "python manage.py migrate"
    assert parsed.postdeploy == "python seed.py"
    assert parsed.web_checks == (
        HealthCheck("/health", timeout=5.0, attempts=3, wait=1.0),
        HealthCheck("/", timeout=5.0, attempts=3, wait=0.5, initial_delay=2.0),
    )
    assert parsed.warnings == (
        "app.json \"formation.web\" key 'size' is not used by Slipway; ignored.",
    )
    assert parsed.web_checks[0].describe() == "GET /health (3 attempts of 5 s)"


def test_empty_and_single_object_shapes() -> None:
    assert appjson.parse({}) == AppJson()
    one = appjson.parse({"healthchecks": {"web": {"path": "/up"}}})
    assert one.web_checks == (HealthCheck("/up"),)


def test_unknown_keys_are_warnings_not_errors() -> None:
    parsed = appjson.parse(
        {
            "env": {"SECRET": {"generator": "secret"}},
            "addons": ["heroku-postgresql"],
            "scripts": {"test": "pytest", "dokku": {"predeploy": "x"}},
            "healthchecks": {"worker": [], "web": [{"type": "liveness", "path": "/"}]},
            "keywords": ["ignored", "silently"],
        }
    )
    assert parsed == AppJson(warnings=parsed.warnings)
    assert parsed.warnings == (
        "app.json key 'addons' is not used by Slipway; ignored.",
        "app.json key 'env' is not used by Slipway; ignored.",
        'app.json "scripts.dokku" is not used by Slipway; ignored.',
        'app.json "scripts.test" is not used by Slipway; ignored.',
        'app.json "healthchecks.worker" ignored: only web is checked.',
        "app.json \"healthchecks.web[0]\" of type 'liveness' ignored: only startup checks run.",
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"formation": [1]}, 'app.json "formation" must be an object'),
        ({"formation": {"web": -1}}, '"formation.web": the quantity must be a whole number'),
        ({"formation": {"web": {"quantity": "2"}}}, "whole number from 0 to 10"),
        ({"formation": {"web": 11}}, "from 0 to 10"),
        ({"formation": {"web": True}}, "whole number"),
        ({"formation": {"bad name": 1}}, "'bad name' is not a valid process type name"),
        ({"formation": {"release": 1}}, "the release process runs once per release"),
        ({"scripts": "migrate"}, 'app.json "scripts" must be an object'),
        ({"scripts": {"predeploy": ""}}, '"scripts.predeploy" must be a command line'),
        ({"scripts": {"postdeploy": ["a"]}}, '"scripts.postdeploy" must be a command line'),
        ({"healthchecks": []}, 'app.json "healthchecks" must be an object'),
        ({"healthchecks": {"web": "/health"}}, '"healthchecks.web" must be a list'),
        ({"healthchecks": {"web": ["/health"]}}, '"healthchecks.web[0]" must be an object'),
        ({"healthchecks": {"web": [{"timeout": 5}]}}, 'needs a "path" starting with /'),
        ({"healthchecks": {"web": [{"path": "health"}]}}, 'needs a "path" starting with /'),
        ({"healthchecks": {"web": [{"path": "/", "timeout": 0}]}}, '"timeout" must be a number'),
        ({"healthchecks": {"web": [{"path": "/", "attempts": 1.5}]}}, '"attempts" must be a'),
        ({"healthchecks": {"web": [{"path": "/", "wait": "1"}]}}, '"wait" must be a number'),
    ],
)
def test_malformed_values_are_one_clear_sentence(data: dict[str, Any], message: str) -> None:
    with pytest.raises(Invalid) as raised:
        appjson.parse(data)
    text = str(raised.value)
    assert message in text and text.endswith(".") and "\n" not in text


def test_invalid_json_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "app.json").write_text('{\n  "formation": {"web": 1},\n}')
    with pytest.raises(Invalid, match=r"app.json is not valid JSON \(line 3: "):
        read_app_json(tmp_path, print)


def test_warnings_go_to_the_build_log(tmp_path: Path) -> None:
    (tmp_path / "app.json").write_text(json.dumps({"stack": "heroku-24"}))
    lines: list[str] = []
    assert read_app_json(tmp_path, lines.append).warnings
    assert lines == ["       warning: app.json key 'stack' is not used by Slipway; ignored."]
    assert read_app_json(tmp_path / "missing", lines.append) == AppJson()


def test_formation_merge_first_deploy_then_only_missing_types() -> None:
    wanted = {"web": 2, "worker": 1}
    assert appjson.merge_formation({"web": 1}, wanted, first=True) == {"web": 2, "worker": 1}
    assert appjson.merge_formation({"web": 3}, wanted, first=False) == {"web": 3, "worker": 1}
    assert appjson.merge_formation({"web": 3, "worker": 0}, wanted, first=False) == {
        "web": 3,
        "worker": 0,
    }
    assert appjson.merge_formation({"web": 1}, {}, first=True) == {"web": 1}
