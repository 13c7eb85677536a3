"""`slipway run bash` from a terminal, on a running platform: the real CLI under a pseudo-terminal.

The CLI runs as a user's shell runs it: its stdin, stdout and stderr are the slave side of a
pty that is its controlling terminal. The test types on the master side and reads the screen.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import wait_until
from tests.integration.platform import SLIPWAY, Platform
from tests.integration.test_e2e_api import containers_of
from tests.integration.test_processes_api import cli_env, deployed_logging_app
from tests.integration.test_run_api import run_volumes

pytestmark = pytest.mark.slow

EXPECT_TIMEOUT = 60.0  # seconds for any one thing to show on the screen
# Makes the pty the controlling terminal of the new session, then runs the CLI: the kernel then
# sends it SIGWINCH when the window changes, as for any program in a terminal.
WITH_CONTROLLING_TTY = (
    "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


class Screen:
    """The CLI on a pseudo-terminal: type on it, wait for what it shows, resize it."""

    def __init__(self, platform: Platform, home: Path, *args: str, rows: int, cols: int):
        self.master, slave = os.openpty()
        self._set_size(slave, rows, cols)
        env = cli_env(platform, home) | {"TERM": "xterm-256color"}
        self.process = subprocess.Popen(
            [sys.executable, "-c", WITH_CONTROLLING_TTY, SLIPWAY, *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=home,
            start_new_session=True,
        )
        self.slave = slave  # kept open to read the terminal's modes after the CLI exits
        self.shown = bytearray()
        self.seen = 0  # what expect() already matched stays matched

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def expect(self, pattern: bytes, timeout: float = EXPECT_TIMEOUT) -> re.Match[bytes]:
        """Wait until ``pattern`` shows after the last match; its match."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            found = regex.search(self.shown, self.seen)
            if found:
                self.seen = found.end()
                return found
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                raise AssertionError(f"{pattern!r} did not show; the screen: {self.text()!r}")

    def resize(self, rows: int, cols: int) -> None:
        self._set_size(self.master, rows, cols)
        self.process.send_signal(signal.SIGWINCH)  # as the kernel does for the foreground

    def exit_status(self, timeout: float = EXPECT_TIMEOUT) -> int:
        """The CLI's exit status, reading the screen until it ends."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            self._read(0.2)
        self._read(0.2)
        return self.process.wait(timeout=max(deadline - time.monotonic(), 1))

    def cooked(self) -> bool:
        """Whether the terminal is back in its usual mode: lines, echo and signal keys."""
        lflag = termios.tcgetattr(self.slave)[3]
        wanted = termios.ICANON | termios.ECHO | termios.ISIG
        return lflag & wanted == wanted

    def text(self) -> str:
        return self.shown.decode(errors="replace")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        os.close(self.master)
        os.close(self.slave)

    def _read(self, timeout: float) -> bool:
        """Read what is there within ``timeout``; False once the CLI closed the terminal."""
        ready, _, _ = select.select([self.master], [], [], max(timeout, 0))
        if not ready:
            return True
        try:
            data = os.read(self.master, 4096)
        except OSError:  # EIO: every process holding the slave side has ended
            return False
        self.shown += data
        return bool(data)

    @staticmethod
    def _set_size(fd: int, rows: int, cols: int) -> None:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


@pytest.fixture(scope="module")
def app(running_platform: Platform) -> str:
    return deployed_logging_app(running_platform, "tty", "v3")


@pytest.fixture
def bash(running_platform: Platform, app: str, tmp_path: Path) -> Iterator[Screen]:
    screen = Screen(running_platform, tmp_path, "run", "-a", app, "bash", rows=30, cols=100)
    yield screen
    screen.close()


# Each command prints a marker computed by the shell ($((...))), so the echo of what was typed
# never matches it.


def test_bash_has_a_terminal_that_follows_the_window_and_exits_with_its_status(
    running_platform: Platform, app: str, bash: Screen
) -> None:
    bash.expect(rf"Running bash -c bash on {app} \(v\d+\)".encode())
    bash.type(b'test -t 0 && test -t 1 && echo "tty-$((40+2))"; tty\r')
    bash.expect(rb"tty-42")
    bash.expect(rb"/dev/pts/\d+")
    bash.type(b'echo "user-$((1+1)) $(id -un) $(hostname) $TERM"\r')
    bash.expect(rf"user-2 mop {app} xterm-256color".encode())
    bash.type(b'echo "size-$((3*3)) $(stty size)"\r')
    bash.expect(rb"size-9 30 100")

    bash.resize(41, 132)
    time.sleep(1)  # the resize travels to the container's terminal on its own message
    bash.type(b'echo "size-$((5*5)) $(stty size)"\r')
    bash.expect(rb"size-25 41 132")

    bash.type(b"exit 7\r")
    assert bash.exit_status() == 7, bash.text()
    assert bash.cooked()
    wait_until(lambda: not containers_of(app, "run"), 30, "the one-off container is removed")
    wait_until(lambda: not run_volumes(running_platform), 30, "the one-off volume is removed")


def test_ctrl_c_interrupts_the_command_and_the_shell_goes_on(app: str, bash: Screen) -> None:
    bash.type(b'echo "ready-$((6*7))"\r')
    bash.expect(rb"ready-42")
    started = time.monotonic()
    bash.type(b'sleep 100; echo "after-$((2+3))"\r')
    time.sleep(2)  # sleep is running in the foreground now
    bash.type(b"\x03")
    bash.type(b'echo "alive-$((3+4)) $?"\r')
    bash.expect(rb"alive-7 130")
    assert time.monotonic() - started < 30
    assert b"after-5" not in bash.shown
    bash.type(b"exit\r")
    assert bash.exit_status() == 0, bash.text()  # exit's status is the last command's: echo's


def test_a_terminal_left_behind_is_stopped_and_removed(
    running_platform: Platform, app: str, bash: Screen
) -> None:
    bash.type(b'echo "start-$((2*4))"; sleep 300\r')
    bash.expect(rb"start-8")
    wait_until(lambda: bool(containers_of(app, "run")), 30, "the one-off container runs")
    bash.process.kill()  # the user's laptop went away mid-command
    bash.process.wait(timeout=10)
    wait_until(lambda: not containers_of(app, "run"), 60, "the one-off container is removed")
    wait_until(lambda: not run_volumes(running_platform), 30, "the one-off volume is removed")


def test_a_terminated_cli_restores_the_terminal_and_stops_the_command(
    running_platform: Platform, app: str, bash: Screen
) -> None:
    bash.type(b'echo "raw-$((5+5))"\r')
    bash.expect(rb"raw-10")
    assert not bash.cooked()  # raw mode while the command runs
    bash.process.terminate()
    assert bash.exit_status() == 128 + signal.SIGTERM
    assert bash.cooked()
    wait_until(lambda: not containers_of(app, "run"), 60, "the one-off container is removed")
    wait_until(lambda: not run_volumes(running_platform), 30, "the one-off volume is removed")
