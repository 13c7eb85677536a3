"""Stack detection of PHP and Java apps: their markers win over a bundled package.json."""

from __future__ import annotations

from pathlib import Path

import pytest

from slipway.services.stacks import detect_stack


@pytest.mark.parametrize(
    ("files", "stack"),
    [
        (["composer.json", "public/index.php"], "php"),
        # Laravel and Symfony apps bundle a package.json for their front-end assets.
        (["composer.json", "package.json", "index.html"], "php"),
        (["pom.xml", "src/main/java/App.java"], "java"),
        (["pom.xml", "package.json"], "java"),
        (["gradlew", "settings.gradle"], "java"),
        (["build.gradle"], "java"),
        (["build.gradle.kts"], "java"),
    ],
)
def test_php_and_java_markers(tmp_path: Path, files: list[str], stack: str) -> None:
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}\n")
    assert detect_stack(tmp_path) == stack


def test_a_composer_json_that_is_a_link_is_not_a_php_app(tmp_path: Path) -> None:
    (tmp_path / "elsewhere.json").write_text("{}\n")
    (tmp_path / "composer.json").symlink_to(tmp_path / "elsewhere.json")
    (tmp_path / "index.html").write_text("<h1>site</h1>\n")
    assert detect_stack(tmp_path) == "static"
