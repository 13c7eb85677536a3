"""Java and PHP versions on a running platform: the version an app asks for picks the images.

A Maven app asking for Java 21 (system.properties) and a Composer app asking for PHP 8.4
(require.php) are built and served by the trixie images, their releases remember it, and a
rollback to a release of the bookworm images runs on those again. A version no image offers fails
before any container starts. The Gradle wrapper cannot download Gradle here, so the Gradle test
checks only that such a build ends with one clear line naming the download.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from tests.helpers import wait_until
from tests.integration.platform import Platform
from tests.integration.test_e2e_api import (
    answers,
    deploy,
    log_of,
    new_app,
    tar_dir,
    tar_files,
)
from tests.integration.test_processes_api import slipway
from tests.integration.test_stacks_php_java import POM

pytestmark = pytest.mark.slow

ROLL_TIMEOUT = 120

MAIN = """\
package hello;

import com.sun.net.httpserver.HttpServer;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;

public final class Main {
    public static void main(String[] args) throws Exception {
        int port = Integer.parseInt(System.getenv("PORT"));
        HttpServer server = HttpServer.create(new InetSocketAddress(port), 0);
        server.createContext("/", exchange -> {
            byte[] body = ("java " + System.getProperty("java.version") + "\\n")
                .getBytes(StandardCharsets.UTF_8);
            exchange.sendResponseHeaders(200, body.length);
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(body);
            }
        });
        server.start();
    }
}
"""


def java_app(release: str, **extra: str) -> bytes:
    pom = POM.replace(">17<", f">{release}<")  # maven.compiler.source and target
    return tar_files({"pom.xml": pom, "src/main/java/hello/Main.java": MAIN, **extra})


def stack_of(platform: Platform, app: str) -> str:
    return str(platform.api("GET", f"/apps/{app}").json()["release"]["stack"])


def test_a_maven_app_runs_on_the_java_its_system_properties_asks_for(
    running_platform: Platform, tmp_path: Path
) -> None:
    app = new_app(running_platform, "jver")
    # v1 names no version: the JDK every Java app had before there was a choice.
    first = deploy(running_platform, app, java_app("17"))
    assert first["state"] == "succeeded", log_of(running_platform, app, first["id"])
    assert "-----> Java 17 (no java.runtime.version in system.properties)" in log_of(
        running_platform, app, first["id"]
    )
    wait_until(answers(running_platform, app, "java 17."), 60, "v1 never answered")
    assert stack_of(running_platform, app) == "java"

    done = deploy(
        running_platform, app, java_app("21", **{"system.properties": "java.runtime.version=21\n"})
    )

    log = log_of(running_platform, app, done["id"])
    assert done["state"] == "succeeded", log
    assert "-----> Java 21 (system.properties asks for 21)" in log
    assert "Building with slipway/build-java-21:latest" in log
    assert "-----> Java 21." in log  # the build image's own JDK, with its patch release
    wait_until(answers(running_platform, app, "java 21."), ROLL_TIMEOUT, "Java 21 never answered")
    assert running_platform.http_get_app(app, "/").text.startswith("java 21.")
    assert stack_of(running_platform, app) == "java-21"
    # One-off runs use the release's run image.
    ran = slipway(running_platform, tmp_path, "run", "-a", app, "java -version 2>&1 | tail -n +2")
    assert ran.returncode == 0, ran.stderr
    assert 'openjdk version "21.' in ran.stdout, ran.stdout

    # A rollback to v1 runs it on the JDK it was built for.
    rolled = running_platform.api("POST", f"/apps/{app}/rollback", json={"version": 1})
    assert rolled.status_code in (200, 201), rolled.text
    wait_until(answers(running_platform, app, "java 17."), ROLL_TIMEOUT, "no rollback to 17")
    assert stack_of(running_platform, app) == "java"
    running_platform.api("DELETE", f"/apps/{app}")


def test_a_composer_app_runs_on_the_php_its_require_php_asks_for(
    running_platform: Platform, tmp_path: Path
) -> None:
    app = new_app(running_platform, "phpver")
    files = {
        "composer.json": json.dumps({"require": {"php": "^8.4"}}),
        "public/index.php": "<?php echo 'php ', PHP_VERSION, ' ', php_sapi_name(), \"\\n\";\n",
    }

    done = deploy(running_platform, app, tar_files(files))

    log = log_of(running_platform, app, done["id"])
    assert done["state"] == "succeeded", log
    assert "-----> PHP 8.4 (composer.json requires php ^8.4)" in log
    assert "Building with slipway/build-php-8.4:latest" in log
    assert "-----> PHP 8.4." in log  # Composer's own check of the build image's PHP
    response = running_platform.http_get_app(app, "/")
    assert response.status_code == 200, response.text
    assert response.text.startswith("php 8.4.") and response.text.endswith(" fpm-fcgi\n")
    assert stack_of(running_platform, app) == "php-8.4"
    ran = slipway(
        running_platform, tmp_path, "run", "-a", app, "php -r 'echo PHP_VERSION, PHP_EOL;'"
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("8.4."), ran.stdout
    running_platform.api("DELETE", f"/apps/{app}")


@pytest.mark.parametrize(
    ("files", "error"),
    [
        (
            {"pom.xml": POM, "system.properties": "java.runtime.version=1.8\n"},
            "system.properties asks for Java 1.8, which Slipway does not offer: it offers "
            "Java 21, Java 17 (set java.runtime.version to one of them).",
        ),
        (
            {"composer.json": json.dumps({"require": {"php": "~8.3.0"}}), "index.php": "<?php\n"},
            "composer.json requires php ~8.3.0, which no PHP Slipway offers meets: it offers "
            "PHP 8.4, PHP 8.2 (change require.php).",
        ),
    ],
    ids=["java", "php"],
)
def test_a_version_no_image_offers_fails_at_once_listing_the_offered(
    running_platform: Platform, files: dict[str, str], error: str
) -> None:
    app = new_app(running_platform, "nover")
    started = time.monotonic()

    failed = deploy(running_platform, app, tar_files(files))

    assert failed["state"] == "failed"
    assert failed["error"] == error
    assert "Building with" not in log_of(running_platform, app, failed["id"])
    assert time.monotonic() - started < 60
    running_platform.api("DELETE", f"/apps/{app}")


# ----------------------------------------------------------------------------- Gradle

# Where a gradle-wrapper.properties names its Gradle: a host no test machine reaches (.invalid).
GRADLE_DIST = "https://gradle.example.invalid/distributions/gradle-8.10.2-bin.zip"
WRAPPER_PROPERTIES = (
    "distributionUrl="
    + GRADLE_DIST.replace(":", "\\:", 1)
    + "\n"
    + (
        "distributionBase=GRADLE_USER_HOME\ndistributionPath=wrapper/dists\n"
        "zipStoreBase=GRADLE_USER_HOME\nzipStorePath=wrapper/dists\n"
    )
)
# What the gradlew that `gradle wrapper` writes comes down to, without its 250 lines of finding
# a JVM on other systems.
GRADLEW = (
    '#!/bin/sh\nexec java -classpath "$(dirname "$0")/gradle/wrapper/gradle-wrapper.jar" '
    'org.gradle.wrapper.GradleWrapperMain "$@"\n'
)


def gradle_wrapper_jar() -> bytes:
    """A real Gradle wrapper jar: Debian's wrapper classes with the command-line classes that
    upstream's jar bundles, and the build receipt it reads its own version from. Debian's
    package is fetched in a container from the mirror the images are built from."""
    script = (
        "apt-get update -qq >/dev/null && cd /tmp && apt-get download -qq libgradle-core-java "
        ">/dev/null && dpkg-deb --fsys-tarfile libgradle-core-java_*.deb | tar -xf - -C /tmp "
        "./usr/share/java/gradle-wrapper-4.4.1.jar ./usr/share/java/gradle-cli-4.4.1.jar "
        "&& cd /tmp/usr/share/java && tar -cf - gradle-wrapper-4.4.1.jar gradle-cli-4.4.1.jar"
    )
    fetched = subprocess.run(
        ["docker", "run", "--rm", "--user", "root", "--entrypoint", "bash"]
        + ["slipway/base-trixie:latest", "-c", script],
        capture_output=True,
        timeout=300,
        check=True,
    )
    merged = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(fetched.stdout)) as jars,
        zipfile.ZipFile(merged, "w") as out,
    ):
        seen: set[str] = set()
        for member in jars.getmembers():
            data = jars.extractfile(member)
            assert data is not None
            with zipfile.ZipFile(io.BytesIO(data.read())) as jar:
                for info in jar.infolist():
                    if info.filename not in seen:
                        seen.add(info.filename)
                        out.writestr(info, jar.read(info))
        out.writestr("build-receipt.properties", "versionNumber=4.4.1\n")
    return merged.getvalue()


def test_a_gradle_wrapper_that_cannot_download_gradle_says_so(
    running_platform: Platform, tmp_path: Path
) -> None:
    app = new_app(running_platform, "gradle")
    files = {
        "gradlew": GRADLEW,
        "gradle/wrapper/gradle-wrapper.properties": WRAPPER_PROPERTIES,
        "settings.gradle": "rootProject.name = 'hello'\n",
        "build.gradle": "plugins { id 'java' }\ntask stage(dependsOn: ['build'])\n",
        "system.properties": "java.runtime.version=21\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "gradle/wrapper/gradle-wrapper.jar").write_bytes(gradle_wrapper_jar())

    failed = deploy(running_platform, app, tar_dir(tmp_path))

    log = log_of(running_platform, app, failed["id"])
    assert failed["state"] == "failed", log
    assert "-----> Java 21 (system.properties asks for 21)" in log
    assert "Building with the Gradle wrapper: ./gradlew stage" in log  # the app's stage task
    assert f"Downloading {GRADLE_DIST}" in log  # the real wrapper tried
    [last] = [line for line in log.splitlines() if line.startswith("error: ")]
    said = "error: the Gradle build failed (exit code 1): the wrapper could not download "
    assert last.startswith(f"{said}{GRADLE_DIST} ("), last
    assert last.endswith(")") and "Exception" in last, last
    running_platform.api("DELETE", f"/apps/{app}")
