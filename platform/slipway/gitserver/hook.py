"""The pre-receive hook: a push to the deploy branch deploys the pushed commit.

git receive-pack runs it (``pre-receive.sh``) with ``old new ref`` lines on stdin. Everything
printed reaches the pusher as ``remote:`` lines. Exit status 0 accepts the push; anything else
rejects it, so a failed deploy leaves the branch (and the running release) as they were.

It is a client of Slipway's own HTTP API, with the pusher's token: ``git archive`` of the pushed
commit streams into ``POST /apps/<app>/deploys`` (naming the commit in ``X-Slipway-Commit``),
then the deploy's log is followed until the deploy ends. The API view that ran receive-pack hands
over what it needs through the environment (``handoff.py``).

A push waits for this process to start, so it imports little: the standard library only, under
``python -I -S``, and not even ``http.client`` (whose ``email`` imports cost more than the rest of
the hook): the few loopback calls to our own API are plain HTTP/1.1 over a socket.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any, NamedTuple

# The variables the API view hands over (see handoff.py).
API_VAR = "SLIPWAY_API_URL"  # the API on loopback, e.g. http://127.0.0.1:7000
TOKEN_VAR = "SLIPWAY_GIT_TOKEN"  # the token the pusher signed in with
APP_VAR = "SLIPWAY_GIT_APP"
BRANCH_VAR = "SLIPWAY_GIT_BRANCH"  # the app's deploy branch
APP_URL_VAR = "SLIPWAY_APP_URL"  # where the app answers, for the last line
TIMEOUT_VAR = "SLIPWAY_DEPLOY_TIMEOUT"  # seconds a deploy may take before the push gives up
COMMIT_HEADER = "X-Slipway-Commit"

ZERO = "0" * 40
FINAL_STATES = {"succeeded", "failed", "cancelled"}
CHUNK = 64 * 1024
MAX_LINE = 64 * 1024  # of a status, header or chunk-size line
REQUEST_TIMEOUT = 120.0  # for one API answer; following the log has the deploy's own deadline
RETRY_PAUSE = 0.2  # before opening the log again when it ended with the deploy unfinished
REFUSED = "The push is rejected; the previous release keeps serving."


class HookError(Exception):
    """Stops the deploy of this push; the message is one clear sentence for the pusher."""


class RefUpdate(NamedTuple):
    old: str
    new: str
    ref: str


class Handoff(NamedTuple):
    api_url: str
    token: str
    app: str
    branch: str
    app_url: str
    timeout: float

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Handoff | None:
        """What the API view handed over, or None when the push did not come through it."""
        try:
            return cls(
                api_url=environ[API_VAR],
                token=environ[TOKEN_VAR],
                app=environ[APP_VAR],
                branch=environ[BRANCH_VAR],
                app_url=environ[APP_URL_VAR],
                timeout=float(environ[TIMEOUT_VAR]),
            )
        except (KeyError, ValueError):
            return None


def parse_updates(text: str) -> list[RefUpdate]:
    """The ``<old> <new> <ref>`` lines git gives a pre-receive hook."""
    updates = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3:
            updates.append(RefUpdate(*parts))
    return updates


def say(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


# ----------------------------------------------------------------------------- HTTP


class Answer:
    """One HTTP answer read from a socket: the status, the headers and the body as it comes."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._reader = sock.makefile("rb")
        status_line = self._reader.readline(MAX_LINE).split(None, 2)
        if len(status_line) < 2 or not status_line[1].isdigit():
            raise HookError("The Slipway API sent an answer that is not HTTP.")
        self.status = int(status_line[1])
        self.headers: dict[str, str] = {}
        while (line := self._reader.readline(MAX_LINE)) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            self.headers[name.strip().lower()] = value.strip()

    def chunks(self) -> Iterator[bytes]:
        """The body, de-chunked, as the server sends it."""
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            while size := int(self._reader.readline(MAX_LINE).split(b";")[0] or b"0", 16):
                data = self._reader.read(size + 2)  # the chunk and its CRLF
                if len(data) < size + 2:
                    raise HookError("The Slipway API's answer ended half-way.")
                yield data[:size]
        elif "content-length" in self.headers:
            yield self._reader.read(int(self.headers["content-length"]))
        else:  # the connection is closed after the answer
            while chunk := self._reader.read1(CHUNK):
                yield chunk

    def json(self) -> dict[str, Any]:
        """The body as a JSON object ({} when it is not one)."""
        try:
            answer = json.loads(b"".join(self.chunks()))
        except ValueError:
            return {}
        return answer if isinstance(answer, dict) else {}

    def close(self) -> None:
        self._reader.close()
        self.sock.close()


class Api:
    """The few calls the hook makes to the API on loopback, one connection each."""

    def __init__(self, base_url: str, token: str, app: str) -> None:
        host, _, port = base_url.removeprefix("http://").rstrip("/").rpartition(":")
        if not base_url.startswith("http://") or not host or not port.isdigit():
            raise HookError(f"The API address {base_url!r} handed to the hook is not http://.")
        if any(c in token for c in "\r\n"):
            raise HookError("The API token has a line break in it.")
        self.base_url = base_url
        self._address = (host.strip("[]"), int(port))  # [::1] is an IPv6 address
        self._head = f"Host: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        self._head += "User-Agent: slipway-git-hook\r\nConnection: close\r\n"
        self._prefix = f"/api/v1/apps/{app}"

    def call(
        self,
        method: str,
        path: str,
        timeout: float = REQUEST_TIMEOUT,
        body: Iterable[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """Send a request (a body goes chunked, as it comes) and read the answer's head."""
        try:
            sock = socket.create_connection(self._address, timeout=timeout)
        except OSError as exc:
            raise HookError(f"Cannot reach the Slipway API at {self.base_url}: {exc}.") from None
        sending: OSError | None = None
        try:
            sending = _send(sock, method, self._prefix + path, self._head, headers or {}, body)
            return Answer(sock)
        except OSError as exc:
            sock.close()
            reason = sending or exc
            raise HookError(f"The Slipway API did not answer {method} {path}: {reason}.") from None
        except BaseException:
            sock.close()
            raise

    def fetch(self, method: str, path: str, **kw: Any) -> tuple[int, dict[str, Any]]:
        """One call's status and JSON answer."""
        answer = self.call(method, path, **kw)
        try:
            return answer.status, answer.json()
        except OSError as exc:
            raise HookError(f"The API's answer to {method} {path} broke off: {exc}.") from None
        finally:
            answer.close()

    def create_deploy(self, archive: Iterable[bytes], commit: str) -> int:
        """Stream the archive into a new deploy of the commit; its id."""
        headers = {"Content-Type": "application/gzip", COMMIT_HEADER: commit}
        status, body = self.fetch("POST", "/deploys", body=archive, headers=headers)
        if status != 202:
            raise HookError(_refusal(status, body))
        return int(body["id"])

    def deploy(self, deploy_id: int) -> dict[str, Any] | None:
        """The deploy as the API shows it; None once it is gone (its app was destroyed)."""
        status, body = self.fetch("GET", f"/deploys/{deploy_id}")
        if status == 404:
            return None
        if status != 200:
            raise HookError(_refusal(status, body))
        return body

    def log(self, deploy_id: int, deadline: float) -> Iterator[bytes]:
        """The deploy's log from the top, streamed while it runs; it stops at ``deadline``."""
        answer = self.call("GET", f"/deploys/{deploy_id}/log", timeout=_left(deadline))
        try:
            if answer.status != 200:
                return  # the deploy's own answer says why
            chunks = answer.chunks()
            while True:
                answer.sock.settimeout(_left(deadline))  # no read outlasts the deadline
                chunk = next(chunks, b"")
                if not chunk:
                    return
                yield chunk
        except TimeoutError:
            return  # the caller sees the deadline has passed
        except (OSError, ValueError) as exc:
            raise HookError(f"Following the log of deploy {deploy_id} failed: {exc}.") from None
        finally:
            answer.close()


def _send(
    sock: socket.socket,
    method: str,
    path: str,
    head: str,
    headers: Mapping[str, str],
    body: Iterable[bytes] | None,
) -> OSError | None:
    """Send one request; an error while sending the body is returned, not raised.

    The API may refuse an upload before reading all of it (and stop reading): its answer, not
    the broken pipe, says why.
    """
    lines = f"{method} {path} HTTP/1.1\r\n{head}"
    lines += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    if body is not None:
        lines += "Transfer-Encoding: chunked\r\n"
    sock.sendall((lines + "\r\n").encode("latin-1"))
    if body is None:
        return None
    try:
        for chunk in body:
            if chunk:
                sock.sendall(b"%x\r\n%b\r\n" % (len(chunk), chunk))
        sock.sendall(b"0\r\n\r\n")
    except OSError as exc:
        return exc
    return None


def _left(deadline: float) -> float:
    return max(0.05, deadline - time.monotonic())


def _refusal(status: int, answer: dict[str, Any]) -> str:
    if status == 401:
        return "Your API token is no longer valid (was it or its user removed?)."
    return str(answer.get("error") or f"The Slipway API answered with status {status}.")


# ----------------------------------------------------------------------------- the deploy


def archive_chunks(proc: subprocess.Popen[bytes]) -> Iterator[bytes]:
    """``git archive``'s output; a failure raises before the end, so no deploy is made of it."""
    assert proc.stdout and proc.stderr
    while chunk := proc.stdout.read(CHUNK):
        yield chunk
    if proc.wait() != 0:
        stderr = proc.stderr.read().decode("utf-8", "replace").strip()
        raise HookError(f"git archive failed: {stderr or f'exit status {proc.returncode}'}")


def queue_deploy(api: Api, sha: str) -> int:
    """Send ``git archive`` of the commit (still in quarantine: git's env finds it); the id."""
    proc = subprocess.Popen(
        ["git", "archive", "--format=tar.gz", sha], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        return api.create_deploy(archive_chunks(proc), sha)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def follow_deploy(api: Api, deploy_id: int, timeout: float, out: IO[str]) -> dict[str, Any]:
    """Print the deploy's log as it grows; the final deploy, or HookError past ``timeout``."""
    deadline = time.monotonic() + timeout
    printed = 0  # bytes of the log already shown: a re-opened log starts from the top
    while True:
        seen, pending = 0, b""
        for chunk in api.log(deploy_id, deadline):
            pending += chunk[max(0, printed - seen) :]
            seen += len(chunk)
            complete = pending.rfind(b"\n") + 1  # whole lines only; the rest comes next
            if complete:
                out.write(pending[:complete].decode("utf-8", "replace"))
                out.flush()
                printed, pending = printed + complete, pending[complete:]
        deploy = api.deploy(deploy_id)
        if deploy is None:
            raise HookError(f"Deploy {deploy_id} disappeared (was the app destroyed?).")
        if deploy.get("state") in FINAL_STATES:
            if pending:
                out.write(pending.decode("utf-8", "replace") + "\n")
            return deploy
        if time.monotonic() >= deadline:
            raise HookError(
                f"Deploy {deploy_id} did not finish within {int(timeout)} seconds "
                f"(it is still {deploy.get('state')})."
            )
        time.sleep(min(RETRY_PAUSE, _left(deadline)))


def deploy_push(handoff: Handoff, sha: str) -> bool:
    """Deploy one pushed commit, printing its log; True when it succeeded."""
    say(f"-----> Deploying {handoff.app} at {sha[:12]}")
    try:
        api = Api(handoff.api_url, handoff.token, handoff.app)
        deploy_id = queue_deploy(api, sha)
        deploy = follow_deploy(api, deploy_id, handoff.timeout, sys.stdout)
    except HookError as exc:
        say(f" !     {exc}")
        say(f" !     {REFUSED}")
        return False
    if deploy.get("state") != "succeeded":
        state, error = deploy.get("state"), deploy.get("error") or "see the lines above"
        say(f" !     Deploy {deploy_id} {state}: {error}")
        say(f" !     {REFUSED}")
        return False
    say(f"-----> Deployed: {handoff.app_url}")
    return True


# ----------------------------------------------------------------------------- entry point


def run(updates: list[RefUpdate], handoff: Handoff) -> int:
    """Handle every pushed ref; return the exit status (non-zero rejects the whole push)."""
    deploy_ref = f"refs/heads/{handoff.branch}"
    status = 0
    for update in updates:
        if update.ref != deploy_ref:
            say(f"-----> {update.ref}: accepted, not deployed (only {handoff.branch} deploys)")
        elif update.new == ZERO:
            say(f"-----> {update.ref} deleted: nothing deployed, the app keeps running")
        elif not deploy_push(handoff, update.new):
            status = 1
    return status


def main() -> int:
    handoff = Handoff.from_environment(os.environ)
    if handoff is None:
        say(" !     Push through the Slipway API (http://<api>/git/<app>.git) to deploy.")
        return 1
    return run(parse_updates(sys.stdin.read()), handoff)


if __name__ == "__main__":
    sys.exit(main())
