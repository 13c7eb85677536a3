"""The dashboard in a real browser (Debian's headless Chromium via Selenium) on a running platform.

One journey, in order, as a user would take it: sign in with the admin token, set a password and
sign in with it, create an app, deploy a tarball from the form while the build log streams in,
change a config var, roll back, restart an instance, crash the app and see the crash in the
events. Screenshots of the main pages go to ``test-artifacts/dashboard/`` (not committed).
"""

from __future__ import annotations

import io
import secrets
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import REPO
from tests.integration.platform import Platform

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = REPO / "test-artifacts" / "dashboard"
DEPLOY_TIMEOUT = 600
ROLL_TIMEOUT = 180
EVENT_TIMEOUT = 120

# A tiny stdlib web app: it greets with $GREETING, tells its release, and /crash kills it.
APP_PY = """\
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/crash":
            os._exit(3)
        body = f"{os.environ.get('GREETING', 'hello')} from {os.environ.get('VERSION', '?')}"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(body.encode())

print("listening on", os.environ["PORT"], flush=True)
HTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
"""


def source_tarball(path: Path) -> Path:
    files = {"app.py": APP_PY, "requirements.txt": "", "Procfile": "web: python3 app.py\n"}
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        # `make test` installs them, so a missing browser is a broken set-up, never a pass.
        pytest.fail("chromium and chromium-driver are not installed: run `make test`")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_window_size(1280, 900)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


class Dashboard:
    """The browser pointed at one platform, with the few moves the journey needs."""

    def __init__(self, driver: WebDriver, platform: Platform) -> None:
        self.driver = driver
        self.platform = platform
        self.base = platform.api_url

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def fill(self, css: str, text: str) -> None:
        field = self.find(css)
        field.clear()
        field.send_keys(text)

    def click_and_load(self, css: str) -> None:
        """Click something that loads a new page, and wait until the old one is gone.

        A click returns before the browser has navigated, so reading the page at once could
        still read the old one.
        """
        old_page = self.find("html")
        self.find(css).click()
        self.wait(staleness_of(old_page), 30, f"clicking {css} loaded no new page")

    def submit(self, form_css: str) -> None:
        self.click_and_load(f"{form_css} button[type=submit]")

    def flash(self) -> str:
        return " ".join(node.text for node in self.all(".flash"))

    def wait(self, what: Callable[[WebDriver], object], timeout: float, message: str) -> None:
        WebDriverWait(self.driver, timeout, poll_frequency=0.5).until(what, message)

    def reload_until(self, path: str, css: str, timeout: float) -> WebElement:
        """Open ``path`` again and again until ``css`` is on it (the page has no live refresh)."""
        deadline = time.monotonic() + timeout
        while True:
            self.open(path)
            found = self.all(css)
            if found:
                return found[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"{css} did not appear on {path} within {timeout:.0f} s")
            time.sleep(2)

    def screenshot(self, name: str, full_page: bool = False) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        if full_page:
            height = self.driver.execute_script("return document.body.scrollHeight")
            width = self.driver.get_window_size()["width"]
            self.driver.set_window_size(width, min(int(height) + 120, 6000))
        self.driver.save_screenshot(str(path))
        if full_page:
            self.driver.set_window_size(width, 900)
        return path


def answers(platform: Platform, app: str, text: str) -> Callable[[object], bool]:
    """A wait condition: the app answers through the router with ``text`` in its body."""

    def check(_: object) -> bool:
        try:
            response = platform.http_get_app(app, timeout=5)
        except OSError:
            return False
        return response.status_code == 200 and text in response.text

    return check


def test_the_dashboard_journey(
    running_platform: Platform, browser: WebDriver, tmp_path: Path
) -> None:
    dash = Dashboard(browser, running_platform)
    name = f"dash-{secrets.token_hex(3)}"

    # ---- signed out: every page sends you to sign in --------------------------------------
    dash.open(f"/apps/{name}")
    assert "/signin?next=" in browser.current_url
    dash.screenshot("01-sign-in")

    # ---- the admin token signs in; the admin sets a password and signs in with it ----------
    dash.fill("#token", running_platform.admin_token)
    dash.submit("form:has(#token)")
    assert browser.current_url.endswith(f"/apps/{name}")  # sent on to where it was going
    dash.open("/account/password")
    dash.fill("#new", "a long admin password")
    dash.fill("#confirm", "a long admin password")
    dash.submit("form:has(#new)")
    assert "password is saved" in dash.flash()
    dash.click_and_load("nav form button")  # sign out
    assert "/signin" in browser.current_url
    dash.fill("#username", "admin")
    dash.fill("#password", "a long admin password")
    dash.submit("form:has(#password)")
    assert "Sign out" in dash.find("nav").text

    # ---- create an app -----------------------------------------------------------------------
    dash.open("/")
    dash.fill("#name", name)
    dash.submit("form:has(#name)")
    assert browser.current_url.endswith(f"/apps/{name}")
    assert "Nothing is released yet" in dash.find("#overview").text

    # ---- deploy a tarball from the form; the build log streams until the release is live ------
    dash.find("#source").send_keys(str(source_tarball(tmp_path / "source.tar.gz")))
    dash.submit("form:has(#source)")
    assert "/deploys/" in browser.current_url
    dash.wait(
        lambda d: (
            "Building" in d.find_element(By.ID, "build-log").text
            or "-----> " in d.find_element(By.ID, "build-log").text
        ),
        DEPLOY_TIMEOUT,
        "the build log never showed a step",
    )
    dash.screenshot("03-deploy-building")
    dash.wait(
        lambda d: (
            d.find_element(By.CSS_SELECTOR, "#deploy-state .badge").text in ("succeeded", "failed")
        ),
        DEPLOY_TIMEOUT,
        "the deploy did not finish",
    )
    state = dash.find("#deploy-state .badge").text
    log_text = dash.find("#build-log").text
    dash.screenshot("04-deploy-finished")
    assert state == "succeeded", log_text
    assert "The new release is live" in dash.find("#deploy-done").text
    assert "Python" in log_text  # lines of the real build image arrived in the page
    dash.wait(answers(running_platform, name, "hello from"), ROLL_TIMEOUT, "app never answered")

    # ---- change a config var: a new release rolls out ------------------------------------------
    dash.open(f"/apps/{name}")
    dash.fill("#config-key", "GREETING")
    dash.fill("#config-value", "howdy")
    dash.submit("form:has(#config-key)")
    assert "GREETING is set; release v2 is rolling out" in dash.flash()
    assert "howdy" not in dash.find("#config").text  # hidden until asked
    dash.click_and_load("#reveal-config")
    assert "howdy" in dash.find("#config").text
    dash.wait(answers(running_platform, name, "howdy from"), ROLL_TIMEOUT, "config not applied")

    # ---- roll back to v1: the greeting goes back -----------------------------------------------
    dash.open(f"/apps/{name}")
    dash.click_and_load("#releases tr[data-release='1'] button")
    assert "Rolling back to v1: release v3" in dash.flash()
    dash.wait(answers(running_platform, name, "hello from"), ROLL_TIMEOUT, "rollback not live")
    dash.reload_until(f"/apps/{name}", "#current-release", ROLL_TIMEOUT)
    assert dash.find("#current-release").text == "v3"

    # ---- restart an instance ------------------------------------------------------------------
    dash.open(f"/apps/{name}")
    dash.click_and_load("#instances button[data-action='restart']")
    assert "restarted" in dash.flash()
    dash.wait(
        answers(running_platform, name, "hello from"), ROLL_TIMEOUT, "no answer after restart"
    )

    # ---- logs: the page shows the tail; "Follow live" streams new lines ------------------------
    dash.open(f"/apps/{name}")
    assert "web.1 | listening on" in dash.find("#app-log").text
    dash.find("#follow-logs").click()
    dash.wait(
        lambda d: "Following the logs live" in d.find_element(By.ID, "logs-status").text,
        30,
        "the log stream did not open",
    )
    running_platform.http_get_app(name, "/from-the-test")
    dash.wait(
        lambda d: "/from-the-test" in d.find_element(By.ID, "app-log").text,
        30,
        "a new log line did not arrive",
    )

    # ---- crash it: the crash shows up in the events and on the apps list ---------------------
    try:
        running_platform.http_get_app(name, "/crash", timeout=5)
    except OSError:
        pass  # the process died mid-answer: that is the point
    dash.reload_until(f"/apps/{name}", "#events li[data-event='crash']", EVENT_TIMEOUT)
    dash.screenshot("05-app-page", full_page=True)
    dash.open("/")
    assert "crashed recently" in dash.find(f"tr[data-app='{name}']").text
    dash.screenshot("02-apps-list")

    # ---- on a phone -------------------------------------------------------------------------
    browser.set_window_size(390, 844)
    dash.open(f"/apps/{name}")
    dash.screenshot("06-app-page-phone", full_page=True)


def test_browser_sees_no_page_without_signing_in(
    running_platform: Platform, browser: WebDriver
) -> None:
    dash = Dashboard(browser, running_platform)
    for path in ("/", "/apps/new", "/account/password"):
        dash.open(path)
        assert "/signin" in browser.current_url, path
    session_cookies = [c for c in browser.get_cookies() if c["name"] == "slipway_session"]
    assert session_cookies, "the sign-in page sets the session cookie (it holds the CSRF token)"
    assert all(c["httpOnly"] and c["sameSite"] == "Lax" for c in session_cookies)


def test_signing_out_in_the_browser_ends_a_copy_of_its_cookie(
    running_platform: Platform, browser: WebDriver
) -> None:
    dash = Dashboard(browser, running_platform)
    dash.open("/signin")
    dash.fill("#token", running_platform.admin_token)
    dash.submit("form:has(#token)")
    (cookie,) = [c for c in browser.get_cookies() if c["name"] == "slipway_session"]
    thief = requests.Session()
    thief.trust_env = False
    thief.cookies.set("slipway_session", cookie["value"])
    page = running_platform.api_url + "/"
    assert thief.get(page, allow_redirects=False, timeout=30).status_code == 200

    dash.submit("form[action$='/signout']")
    assert "/signin" in browser.current_url
    refused = thief.get(page, allow_redirects=False, timeout=30)
    assert refused.status_code == 302 and "/signin" in refused.headers["Location"]
