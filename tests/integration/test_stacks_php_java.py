"""PHP (Composer) and Java (Maven) apps on a running platform: real builds, images and router.

The test machines reach no Packagist and no Maven Central, so the apps have no outside
dependencies: the Composer app only an autoloader, the Maven app only the JDK (its build plugins
come from Debian's Maven repository in the build image).
"""

from __future__ import annotations

import json

import pytest

from tests.helpers import wait_until
from tests.integration.platform import Platform
from tests.integration.test_e2e_api import answers, deploy, log_of, new_app, tar_files

pytestmark = pytest.mark.slow

# ----------------------------------------------------------------------------- PHP

PHP_APP = {
    "composer.json": json.dumps(
        {
            "name": "slipway-tests/hello-php",
            "require": {"php": ">=8.1"},
            "autoload": {"psr-4": {"Hello\\": "src/"}},
        }
    ),
    "src/Greeting.php": (
        "<?php\nnamespace Hello;\n\nfinal class Greeting\n{\n"
        "    public static function text(): string\n    {\n"
        "        return (getenv('GREETING') ?: 'hello') . ' from php ' . PHP_VERSION;\n"
        "    }\n}\n"
    ),
    "public/index.php": (
        "<?php\nrequire __DIR__ . '/../vendor/autoload.php';\n"
        "header('Content-Type: text/plain');\n"
        "echo \\Hello\\Greeting::text(), ' at ', $_SERVER['REQUEST_URI'], \"\\n\";\n"
    ),
    "public/robots.txt": "User-agent: *\n",
    "public/extensions.php": (
        "<?php\n$pdo = new PDO('sqlite::memory:');\n"
        "echo implode(',', PDO::getAvailableDrivers()), ' ',"
        " $pdo->query('select 6*7')->fetchColumn(), ' ',"
        " extension_loaded('intl') ? 'intl' : '-', \"\\n\";\n"
    ),
}


def test_a_composer_app_is_served_by_php_fpm_behind_nginx(running_platform: Platform) -> None:
    app = new_app(running_platform, "php")

    done = deploy(running_platform, app, tar_files(PHP_APP))

    log = log_of(running_platform, app, done["id"])
    assert done["state"] == "succeeded", log
    assert "Php app detected" in log or "PHP app detected" in log, log
    # The newest PHP that require.php lets in.
    assert "-----> PHP 8.4 (composer.json requires php >=8.1)" in log
    by_host = running_platform.http_get_app(app, "/")
    assert by_host.status_code == 200, by_host.text
    assert by_host.text.startswith("hello from php 8.4."), by_host.text
    # A front controller: paths that are no file reach public/index.php; files are served as is.
    routed = running_platform.http_get_app(app, "/some/route?x=1", by="path")
    assert routed.status_code == 200 and routed.text.endswith("at /some/route?x=1\n"), routed.text
    assert running_platform.http_get_app(app, "/robots.txt").text == "User-agent: *\n"
    # The extensions apps commonly need: PDO for MySQL, PostgreSQL and SQLite, and intl.
    assert (
        running_platform.http_get_app(app, "/extensions.php").text == "mysql,pgsql,sqlite 42 intl\n"
    )
    # Only public/ is served: the app's own files are not reachable.
    assert running_platform.http_get_app(app, "/../composer.json").status_code in (400, 404)
    assert running_platform.http_get_app(app, "/vendor/autoload.php").status_code == 404

    changed = running_platform.api("PATCH", f"/apps/{app}/config", json={"GREETING": "howdy"})
    assert changed.status_code == 200, changed.text
    wait_until(answers(running_platform, app, "howdy from php 8.4."), 300, "config not in PHP")
    running_platform.api("DELETE", f"/apps/{app}")


def test_a_heroku_procfile_sets_the_php_document_root(running_platform: Platform) -> None:
    app = new_app(running_platform, "php")
    files = {
        "composer.json": json.dumps({"require": {"php": "8.2.*"}}),  # run-php, on bookworm
        "Procfile": "web: heroku-php-apache2 docroot/\n",
        "docroot/index.php": "<?php echo 'docroot says ', PHP_MAJOR_VERSION, '.', "
        'PHP_MINOR_VERSION, "\\n";\n',
        "public/index.php": "<?php echo 'public is not the docroot';\n",
    }

    done = deploy(running_platform, app, tar_files(files))

    assert done["state"] == "succeeded", log_of(running_platform, app, done["id"])
    response = running_platform.http_get_app(app, "/")
    assert response.status_code == 200 and response.text == "docroot says 8.2\n", response.text
    running_platform.api("DELETE", f"/apps/{app}")


def test_a_php_patch_release_the_image_cannot_meet_fails_at_once(
    running_platform: Platform,
) -> None:
    app = new_app(running_platform, "php")
    # The platform picks the 8.4 line; Composer's rules in the build find Debian's 8.4.x short.
    constraint = ">=8.4.999"
    files = {"composer.json": json.dumps({"require": {"php": constraint}}), "index.php": "<?php\n"}

    done = deploy(running_platform, app, tar_files(files))

    log = log_of(running_platform, app, done["id"])
    assert done["state"] == "failed", log
    assert f"-----> PHP 8.4 (composer.json requires php {constraint})" in log
    assert f"error: composer.json requires php {constraint}, which PHP 8.4." in log, log
    assert "Copying the source" not in log  # it failed before doing anything
    running_platform.api("DELETE", f"/apps/{app}")


def test_a_lock_that_needs_an_extension_the_image_lacks_names_it(
    running_platform: Platform,
) -> None:
    app = new_app(running_platform, "php")
    package = {
        "name": "slipway-tests/needs-mongodb",
        "version": "1.0.0",
        "dist": {"type": "zip", "url": "https://example.invalid/needs-mongodb.zip"},
        "require": {"ext-mongodb": "*"},
        "type": "library",
    }
    lock = {"content-hash": "0", "packages": [package], "packages-dev": [], "aliases": []}
    files = {
        "composer.json": json.dumps({"require": {"slipway-tests/needs-mongodb": "^1.0"}}),
        "composer.lock": json.dumps(lock),
        "public/index.php": "<?php\n",
    }

    done = deploy(running_platform, app, tar_files(files))

    log = log_of(running_platform, app, done["id"])
    assert done["state"] == "failed", log
    assert "error: composer install failed (exit code 2): slipway-tests/needs-mongodb 1.0.0 " in log
    assert "requires ext-mongodb * -> it is missing from your system" in log
    running_platform.api("DELETE", f"/apps/{app}")


# ----------------------------------------------------------------------------- Java

POM = """\
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>tests.slipway</groupId>
  <artifactId>hello-java</artifactId>
  <version>1.0</version>
  <properties>
    <maven.compiler.source>17</maven.compiler.source>
    <maven.compiler.target>17</maven.compiler.target>
    <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding>
  </properties>
  <build>
    <finalName>app</finalName>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-jar-plugin</artifactId>
        <version>3.3.0</version>
        <configuration>
          <archive><manifest><mainClass>hello.Main</mainClass></manifest></archive>
        </configuration>
      </plugin>
    </plugins>
  </build>
</project>
"""

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
            String greeting = System.getenv().getOrDefault("GREETING", "hello");
            String text = exchange.getRequestURI().getPath().equals("/heap")
                ? (Runtime.getRuntime().maxMemory() >> 20) + " MB\\n"
                : greeting + " from java " + Runtime.version().feature() + "\\n";
            byte[] body = text.getBytes(StandardCharsets.UTF_8);
            exchange.sendResponseHeaders(200, body.length);
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(body);
            }
        });
        server.start();
    }
}
"""


def java_app(**extra: str) -> bytes:
    return tar_files({"pom.xml": POM, "src/main/java/hello/Main.java": MAIN, **extra})


def test_a_maven_app_builds_offline_and_answers(running_platform: Platform) -> None:
    app = new_app(running_platform, "java")
    source = java_app(
        **{"system.properties": "java.runtime.version=17\n"},
        Procfile="web: java -jar target/app.jar\n",
    )

    done = deploy(running_platform, app, source)

    log = log_of(running_platform, app, done["id"])
    assert done["state"] == "succeeded", log
    assert "(system.properties asks for 17)" in log
    assert "BUILD SUCCESS" in log
    response = running_platform.http_get_app(app, "/")
    assert response.status_code == 200 and response.text == "hello from java 17\n", response.text
    # The heap is three quarters of the instance's 512 MB (the JVM alone would take a quarter).
    heap = running_platform.http_get_app(app, "/heap").text
    assert 300 <= int(heap.split()[0]) <= 384, heap

    # Maven's local repository is kept in the app's build cache; without a Procfile the one jar
    # the build made is run.
    again = deploy(running_platform, app, java_app())
    again_log = log_of(running_platform, app, again["id"])
    assert again["state"] == "succeeded", again_log
    assert "(the default: no java.runtime.version in system.properties)" in again_log
    cached = running_platform.settings.cache_dir / app / "m2" / "org/apache/maven/plugins"
    assert (cached / "maven-jar-plugin" / "3.3.0").is_dir(), sorted(cached.iterdir())

    # A dependency no repository here has fails the build, naming the artifact and the
    # repository's error; the running release keeps serving.
    missing = "<dependencies><dependency><groupId>com.example.nowhere</groupId>"
    missing += "<artifactId>missing-lib</artifactId><version>1.0</version></dependency>"
    missing += "</dependencies>\n  <build>"
    broken = tar_files(
        {"pom.xml": POM.replace("<build>", missing, 1), "src/main/java/hello/Main.java": MAIN}
    )
    failed = deploy(running_platform, app, broken)
    failed_log = log_of(running_platform, app, failed["id"])
    assert failed["state"] == "failed", failed_log
    [last] = [line for line in failed_log.splitlines() if line.startswith("error: ")]
    assert last.startswith("error: the Maven build failed (exit code 1): Could not "), last
    assert "com.example.nowhere:missing-lib:pom:1.0" in last and "central" in last, last
    assert answers(running_platform, app, "hello from java 17")()
    wait_until(answers(running_platform, app, "hello from java 17"), 60, "v2 never answered")
    running_platform.api("DELETE", f"/apps/{app}")


def test_a_jdk_the_images_do_not_offer_fails_at_once(running_platform: Platform) -> None:
    app = new_app(running_platform, "java")

    done = deploy(
        running_platform, app, java_app(**{"system.properties": "java.runtime.version=11\n"})
    )

    log = log_of(running_platform, app, done["id"])
    assert done["state"] == "failed", log
    assert done["error"] == (
        "system.properties asks for Java 11, which Slipway does not offer: it offers Java 21, "
        "Java 17 (set java.runtime.version to one of them)."
    )
    assert "Building with" not in log  # no build container ran
    running_platform.api("DELETE", f"/apps/{app}")
