"""Python apps written for Heroku deploy unchanged, on a running platform.

A Django app laid out as Heroku's python-getting-started (gunicorn, whitenoise's manifest storage,
a release phase that migrates) gets its static files collected at build time, unless the config
var DISABLE_COLLECTSTATIC says not to; and a pyproject.toml app as ``uv init --app`` makes it (no
[build-system], several modules at the root) gets its dependencies, not a package build.
"""

from __future__ import annotations

import io
import re
import tarfile

import pytest

from tests.helpers import wait_until
from tests.integration.platform import Platform
from tests.integration.test_e2e_api import ROLL_TIMEOUT, answers, deploy, log_of, new_app

pytestmark = pytest.mark.slow

SETTINGS = """\
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "only-for-this-test"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["django.contrib.staticfiles", "gettingstarted"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
]
ROOT_URLCONF = "gettingstarted.urls"
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
WSGI_APPLICATION = "gettingstarted.wsgi.application"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
STATIC_ROOT = BASE_DIR / "staticfiles"
STATIC_URL = "static/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
"""

MANAGE = """\
#!/usr/bin/env python
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gettingstarted.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
"""

CSS = "body { color: rebeccapurple; }\n"

DJANGO_APP = {
    "requirements.txt": "django==5.2.19\ngunicorn==27.0.1\nwhitenoise==6.12.0\n",
    "Procfile": "release: ./manage.py migrate --no-input\nweb: gunicorn gettingstarted.wsgi\n",
    "manage.py": MANAGE,
    "gettingstarted/__init__.py": "",
    "gettingstarted/settings.py": SETTINGS,
    "gettingstarted/wsgi.py": (
        "import os\n\nfrom django.core.wsgi import get_wsgi_application\n\n"
        'os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gettingstarted.settings")\n'
        "application = get_wsgi_application()\n"
    ),
    "gettingstarted/urls.py": (
        "from django.shortcuts import render\nfrom django.urls import path\n\n"
        'urlpatterns = [path("", lambda request: render(request, "index.html"))]\n'
    ),
    "gettingstarted/templates/index.html": (
        '{% load static %}<link rel="stylesheet" href="{% static \'site.css\' %}">'
        "<p>hello from django</p>\n"
    ),
    "gettingstarted/static/site.css": CSS,
}

# `uv init --app`'s layout: no [build-system], no lock, two modules at the root.
UV_APP = {
    "pyproject.toml": (
        '[project]\nname = "uv-style"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        'dependencies = ["six==1.17.0"]\n\n[dependency-groups]\ndev = ["idna==3.10"]\n'
    ),
    "config.py": 'GREETING = "uv-style app"\n',
    "app.py": (
        "import importlib.util\n\nimport six\n\nfrom config import GREETING\n\n\n"
        "def application(environ, start_response):\n"
        '    dev = "with" if importlib.util.find_spec("idna") else "without"\n'
        '    body = f"{GREETING}: six {six.__version__} {dev} idna\\n".encode()\n'
        '    start_response("200 OK", [("Content-Type", "text/plain")])\n'
        "    return [body]\n"
    ),
}

PACKAGED = """
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[tool.setuptools]
py-modules = ["app", "config"]
"""

COLLECTED = re.compile(r"\d+ static files? copied to '/mnt/app/staticfiles', \d+ post-processed")
NO_BUILD_SYSTEM = (
    "pyproject.toml has no [build-system]: installing its dependencies, not the project"
)
HASHED_LINK = re.compile(r'href="(/static/site\.[0-9a-f]{12}\.css)"')


def tar_app(files: dict[str, str], executable: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755 if name in executable else 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def status_is(platform: Platform, app: str, status: int) -> bool:
    try:
        return platform.http_get_app(app, "/", timeout=5).status_code == status
    except OSError:
        return False


def test_a_django_app_gets_its_static_files_collected_unless_disabled(
    running_platform: Platform,
) -> None:
    app = new_app(running_platform, "django")
    source = tar_app(DJANGO_APP, executable=("manage.py",))
    disabled = {"DISABLE_COLLECTSTATIC": "1"}
    assert running_platform.api("PATCH", f"/apps/{app}/config", json=disabled).status_code == 200

    skipped = deploy(running_platform, app, source)

    log = log_of(running_platform, app, skipped["id"])
    assert skipped["state"] == "succeeded", log
    assert "-----> Skipping manage.py collectstatic (DISABLE_COLLECTSTATIC is set)" in log
    assert "Running manage.py collectstatic" not in log
    # What the trial saw: the manifest storage has no manifest, so the page fails.
    wait_until(lambda: status_is(running_platform, app, 500), 60, "the page never failed")

    enabled = {"DISABLE_COLLECTSTATIC": None}
    unset = running_platform.api("PATCH", f"/apps/{app}/config", json=enabled)
    assert unset.status_code == 200, unset.text
    collected = deploy(running_platform, app, source)

    log = log_of(running_platform, app, collected["id"])
    assert collected["state"] == "succeeded", log
    assert "-----> Running manage.py collectstatic" in log
    assert COLLECTED.search(log), log
    assert "Skipping manage.py collectstatic" not in log
    wait_until(answers(running_platform, app, "hello from django"), ROLL_TIMEOUT, "no page")
    page = running_platform.http_get_app(app, "/", timeout=10)
    link = HASHED_LINK.search(page.text)
    assert link, page.text
    served = running_platform.http_get_app(app, link.group(1), timeout=10)
    assert served.status_code == 200
    assert served.text == CSS

    # A collectstatic that fails fails the build, with Django's reason, and the page stays up.
    broken = dict(DJANGO_APP)
    broken["gettingstarted/settings.py"] = SETTINGS.replace("STATIC_ROOT = ", "UNUSED = ")
    failed = deploy(running_platform, app, tar_app(broken, executable=("manage.py",)))

    log = log_of(running_platform, app, failed["id"])
    assert failed["state"] == "failed", log
    assert "To skip this step, set the config var DISABLE_COLLECTSTATIC=1." in log
    assert (
        "\nerror: manage.py collectstatic failed (exit code 1): "
        "django.core.exceptions.ImproperlyConfigured: You're using the staticfiles app without "
        "having set the STATIC_ROOT setting to a filesystem path.\n"
    ) in log
    assert running_platform.http_get_app(app, link.group(1), timeout=10).status_code == 200

    # Without django.contrib.staticfiles there is no collectstatic: skipped, with a note.
    plain = dict(DJANGO_APP)
    plain["gettingstarted/settings.py"] = SETTINGS.replace('"django.contrib.staticfiles", ', "")
    done = deploy(running_platform, app, tar_app(plain, executable=("manage.py",)))

    log = log_of(running_platform, app, done["id"])
    assert done["state"] == "succeeded", log
    assert "skipped: django.contrib.staticfiles is not in INSTALLED_APPS" in log
    running_platform.api("DELETE", f"/apps/{app}")


def test_a_pyproject_app_without_build_system_gets_its_dependencies_only(
    running_platform: Platform,
) -> None:
    app = new_app(running_platform, "uvstyle")

    done = deploy(running_platform, app, tar_app(UV_APP))

    log = log_of(running_platform, app, done["id"])
    assert done["state"] == "succeeded", log
    assert NO_BUILD_SYSTEM in log
    assert "flat-layout" not in log
    wait_until(
        answers(running_platform, app, "uv-style app: six 1.17.0 without idna"),
        60,
        "the app never answered with its dependency",
    )

    # With a [build-system] it is a package, installed as before.
    package = dict(UV_APP)
    package["pyproject.toml"] = UV_APP["pyproject.toml"] + PACKAGED
    packaged = deploy(running_platform, app, tar_app(package))

    log = log_of(running_platform, app, packaged["id"])
    assert packaged["state"] == "succeeded", log
    assert "-----> Installing the project (pyproject.toml)" in log
    assert NO_BUILD_SYSTEM not in log
    assert re.search(r"Successfully installed .*uv[-_]style-0\.1\.0", log), log[-3000:]

    # Dependencies that are not a list fail the build in one line; the app keeps serving.
    broken = dict(UV_APP)
    broken["pyproject.toml"] = UV_APP["pyproject.toml"].replace('["six==1.17.0"]', '"six"')
    failed = deploy(running_platform, app, tar_app(broken))

    log = log_of(running_platform, app, failed["id"])
    assert failed["state"] == "failed", log
    assert "\nerror: [project].dependencies of pyproject.toml is not a list of strings\n" in log
    assert answers(running_platform, app, "uv-style app: six 1.17.0 without idna")()

    # The same dependencies again: the virtualenv comes from the build cache.
    again = deploy(running_platform, app, tar_app(UV_APP))

    log = log_of(running_platform, app, again["id"])
    assert again["state"] == "succeeded", log
    assert (
        "-----> Installing the dependencies of pyproject.toml "
        "(unchanged: the virtualenv from the build cache)"
    ) in log
    wait_until(
        answers(running_platform, app, "uv-style app: six 1.17.0 without idna"),
        ROLL_TIMEOUT,
        "the redeployed app never answered",
    )
    running_platform.api("DELETE", f"/apps/{app}")
