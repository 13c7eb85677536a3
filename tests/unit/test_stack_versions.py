"""Which Java and PHP an app asks for (system.properties, composer.json's require.php)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from slipway.services import java_versions, php_versions
from slipway.services.java_versions import JavaUnavailable
from slipway.services.php_versions import PhpUnavailable, parse

# ----------------------------------------------------------------------------- Java


def java(root: Path, properties: str) -> tuple[str, str, str]:
    (root / "system.properties").write_text(properties)
    choice = java_versions.choose(root)
    return choice.offered.line, choice.offered.variant, choice.reason


@pytest.mark.parametrize(
    ("properties", "line", "variant", "reason"),
    [
        ("java.runtime.version=21\n", "21", "java-21", "system.properties asks for 21"),
        ("java.runtime.version=17\n", "17", "java", "system.properties asks for 17"),
        # The .properties forms: "key: value", "key value", comments, other keys first.
        ("# JDK\n! also a comment\nmaven.version=3.9\njava.runtime.version: 21\n", "21", "java-21",
         "system.properties asks for 21"),
        ("  java.runtime.version   17", "17", "java", "system.properties asks for 17"),
        ("java.runtime.version=21.0.2\n", "21", "java-21",
         "system.properties asks for 21.0.2; Debian's OpenJDK 21 here"),
        ("java.runtime.version=heroku-21\n", "21", "java-21",
         "system.properties asks for heroku-21"),
        ("java.runtime.version=zulu-21\n", "21", "java-21",
         "system.properties asks for zulu-21; only Debian's OpenJDK 21 is offered"),
    ],
)  # fmt: skip
def test_java_runtime_version(
    tmp_path: Path, properties: str, line: str, variant: str, reason: str
) -> None:
    assert java(tmp_path, properties) == (line, variant, reason)


def test_no_java_runtime_version_keeps_the_jdk_apps_had_before(tmp_path: Path) -> None:
    (tmp_path / "pom.xml").write_text("<project/>\n")
    choice = java_versions.choose(tmp_path)
    assert (choice.offered.line, choice.offered.variant) == ("17", "java")
    assert choice.reason == "no java.runtime.version in system.properties"
    assert java(tmp_path, "maven.version=3.9\n")[2] == choice.reason


@pytest.mark.parametrize("asked", ["1.8", "11", "zulu-11", "25.0.1"])
def test_a_java_not_offered_says_what_is(tmp_path: Path, asked: str) -> None:
    with pytest.raises(JavaUnavailable) as missed:
        java(tmp_path, f"java.runtime.version={asked}\n")
    assert str(missed.value) == (
        f"system.properties asks for Java {asked}, which Slipway does not offer: it offers "
        "Java 21, Java 17 (set java.runtime.version to one of them)."
    )


def test_a_java_runtime_version_that_is_no_version_says_so(tmp_path: Path) -> None:
    with pytest.raises(JavaUnavailable, match="'latest', which is no Java version: write a major"):
        java(tmp_path, "java.runtime.version=latest\n")


def test_a_system_properties_that_is_a_link_is_not_read(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text("java.runtime.version=21\n")
    root = tmp_path / "source"
    root.mkdir()
    os.symlink(outside, root / "system.properties")
    assert java_versions.choose(root).offered.variant == "java"


# ----------------------------------------------------------------------------- PHP


def php(root: Path, constraint: str | None) -> str:
    require = {} if constraint is None else {"php": constraint}
    (root / "composer.json").write_text(json.dumps({"require": require}))
    return php_versions.choose(root).offered.line


@pytest.mark.parametrize(
    ("constraint", "line"),
    [
        ("^8.2", "8.4"),  # the newest line it lets in
        (">=8.1", "8.4"),
        ("^8.4", "8.4"),
        (">=8.3", "8.4"),
        ("8.4.*", "8.4"),
        ("~8.3", "8.4"),  # >=8.3 <9.0
        ("~8.2.0", "8.2"),  # >=8.2.0 <8.3
        ("8.2.*", "8.2"),
        (">=8.1 <8.4", "8.2"),
        (">= 8.1, < 8.4", "8.2"),
        ("8.1 - 8.3", "8.2"),  # a partial upper end is a wildcard: <8.4
        ("^7.4 || ^8.2", "8.4"),
        ("^7.4|~8.2.0", "8.2"),
        ("v8.2.*@stable", "8.2"),
        (">=8.4.5", "8.4"),  # some release of 8.4 meets it: the build checks Debian's
        ("8.4", "8.4"),  # exactly 8.4.0 for Composer: the build says Debian's 8.4.x is not
        ("!=8.2.0 <8.3", "8.2"),
        ("*", "8.4"),
    ],
)
def test_require_php_picks_the_newest_line_it_lets_in(
    tmp_path: Path, constraint: str, line: str
) -> None:
    assert php(tmp_path, constraint) == line


@pytest.mark.parametrize("constraint", ["~8.3.0", "^7.4", ">=8.5", "<8.0", "^8.2 <8.2", "8.3.*"])
def test_a_php_no_line_meets_says_what_is_offered(tmp_path: Path, constraint: str) -> None:
    with pytest.raises(PhpUnavailable) as missed:
        php(tmp_path, constraint)
    assert str(missed.value) == (
        f"composer.json requires php {constraint}, which no PHP Slipway offers meets: it offers "
        "PHP 8.4, PHP 8.2 (change require.php)."
    )


@pytest.mark.parametrize("constraint", ["banana", "8.4.*.*", ">=", "dev-master", "^8.2 ||"])
def test_a_constraint_that_is_not_composers_says_so(tmp_path: Path, constraint: str) -> None:
    with pytest.raises(PhpUnavailable, match="which Slipway cannot read as a Composer version"):
        php(tmp_path, constraint)


def test_no_require_php_keeps_the_php_apps_had_before(tmp_path: Path) -> None:
    assert php(tmp_path, None) == "8.2"
    assert php_versions.choose(tmp_path).reason == "no require.php in composer.json"
    (tmp_path / "composer.json").write_text("{not json")  # the build says why, in PHP's words
    assert php_versions.choose(tmp_path).offered.variant == "php"


def test_the_reason_names_the_constraint(tmp_path: Path) -> None:
    php(tmp_path, "^8.2")
    choice = php_versions.choose(tmp_path)
    assert (choice.offered.variant, choice.reason) == ("php-8.4", "composer.json requires php ^8.2")


def test_composer_constraints_as_clauses() -> None:
    assert parse("^8.2") == [[(">=", (8, 2, 0, 0)), ("<", (9, 0, 0, 0))]]
    assert parse("^0.3") == [[(">=", (0, 3, 0, 0)), ("<", (0, 4, 0, 0))]]
    assert parse("~8.3.0") == [[(">=", (8, 3, 0, 0)), ("<", (8, 4, 0, 0))]]
    assert parse("~8") == [[(">=", (8, 0, 0, 0)), ("<", (9, 0, 0, 0))]]
    assert parse("8.4.*") == [[(">=", (8, 4, 0, 0)), ("<", (8, 5, 0, 0))]]
    assert parse("8.1 - 8.3.2") == [[(">=", (8, 1, 0, 0)), ("<=", (8, 3, 2, 0))]]
    assert parse(">=8.1 <8.5 || 9.0") == [
        [(">=", (8, 1, 0, 0)), ("<", (8, 5, 0, 0))],
        [("==", (9, 0, 0, 0))],
    ]
    assert parse("<>8.2.1-dev") == [[("!=", (8, 2, 1, 0))]]
    assert parse("*") == [[]]


def test_a_composer_json_that_is_a_link_is_not_read(tmp_path: Path) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"require": {"php": "^7.4"}}))
    root = tmp_path / "source"
    root.mkdir()
    os.symlink(outside, root / "composer.json")
    assert php_versions.choose(root).offered.variant == "php"
