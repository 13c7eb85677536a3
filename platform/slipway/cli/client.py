"""The CLI's only way to the platform: the HTTP API, with the stored URL and token."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import click
import requests

API_PREFIX = "/api/v1"
CONNECT_TIMEOUT = 10
READ_TIMEOUT = 120
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class CliError(click.ClickException):
    """A failure shown to the user as one sentence: ``error: ...``, exit status 1."""

    def format_message(self) -> str:
        return self.message

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


# ----------------------------------------------------------------------------- stored login


def config_path() -> Path:
    """``~/.config/slipway/config.json`` (or under ``$XDG_CONFIG_HOME``)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "slipway" / "config.json"


def load_login() -> dict[str, str]:
    """The stored ``{"url", "token"}``, or an empty dict when nobody logged in."""
    try:
        data = json.loads(config_path().read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read {config_path()}: {exc}") from exc
    return {k: str(v) for k, v in data.items() if k in ("url", "token")}


def save_login(url: str, token: str) -> Path:
    """Store the URL and token in a file only the user can read (mode 0600)."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Create with 0600 from the start so the token is never readable by others, even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"url": url, "token": token}, f, indent=2)
    os.chmod(path, 0o600)
    return path


def normalise_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = f"http://{url}"
    return url


# ----------------------------------------------------------------------------- the client


@dataclass
class Client:
    """A thin wrapper over ``requests`` that turns every failure into a :class:`CliError`."""

    url: str
    token: str

    @classmethod
    def from_environment(cls) -> Client:
        """``SLIPWAY_URL``/``SLIPWAY_TOKEN`` win over the file written by ``slipway login``."""
        stored = load_login()
        url = os.environ.get("SLIPWAY_URL") or stored.get("url")
        token = os.environ.get("SLIPWAY_TOKEN") or stored.get("token")
        if not url or not token:
            raise CliError(
                "not logged in: run `slipway login`, or set SLIPWAY_URL and SLIPWAY_TOKEN"
            )
        return cls(normalise_url(url), token)

    def request(
        self,
        method: str,
        path: str,
        *,
        stream: bool = False,
        timeout: float | None = READ_TIMEOUT,
        **kwargs: Any,
    ) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        if urlsplit(self.url).hostname in LOOPBACK:
            # A proxy from the environment cannot reach this host's loopback: never use one.
            kwargs["proxies"] = {"http": None, "https": None}
        try:
            response = requests.request(
                method,
                f"{self.url}{API_PREFIX}{path}",
                headers=headers,
                stream=stream,
                timeout=(CONNECT_TIMEOUT, timeout),
                **kwargs,
            )
        except requests.ConnectionError as exc:
            raise CliError(f"cannot reach the Slipway API at {self.url}: is it running?") from exc
        except requests.Timeout as exc:
            raise CliError(f"the Slipway API at {self.url} did not answer in time") from exc
        except requests.RequestException as exc:
            raise CliError(f"request to {self.url} failed: {exc}") from exc
        if response.status_code >= 400:
            raise CliError(error_sentence(response))
        return response

    def get(self, path: str, **kwargs: Any) -> Any:
        return _json(self.request("GET", path, **kwargs))

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return _json(self.request("POST", path, json=body, **kwargs))

    def patch(self, path: str, body: Any) -> Any:
        return _json(self.request("PATCH", path, json=body))

    def delete(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return _json(self.request("DELETE", path, params=params))

    def lines(self, path: str, params: dict[str, Any] | None = None) -> Iterator[str]:
        """Stream a text answer line by line, as the server writes it."""
        with self.request("GET", path, stream=True, timeout=None, params=params) as response:
            try:
                for line in response.iter_lines(decode_unicode=True):
                    yield line if isinstance(line, str) else line.decode("utf-8", "replace")
            except requests.RequestException as exc:
                raise CliError(f"the connection to {self.url} broke: {exc}") from exc


def error_sentence(response: requests.Response) -> str:
    """The one sentence an API error carries, or a plain description of the status."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("error"):
        return str(body["error"])
    if response.status_code == 401:
        return "the token was refused: run `slipway login` again"
    return f"the API answered {response.status_code} {response.reason}"


def _json(response: requests.Response) -> Any:
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError as exc:
        raise CliError(f"the API answered something that is not JSON ({response.url})") from exc
