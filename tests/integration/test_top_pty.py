"""``otel-perf top`` in a real pseudo-terminal: the s key re-sorts, q and Ctrl-C quit cleanly."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

import otel_perf

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")

# The child makes the pty its controlling terminal, so Ctrl-C typed into it becomes SIGINT for
# the child's process group exactly as in an interactive shell.
_LAUNCH = (
    "import fcntl, os, sys, termios\n"
    "fcntl.ioctl(0, termios.TIOCSCTTY, 0)\n"
    "os.execv(sys.executable, [sys.executable, '-m', 'otel_perf', *sys.argv[1:]])\n"
)


@dataclass
class Terminal:
    process: subprocess.Popen[bytes]
    master: int
    output: str = ""

    def read_until(self, predicate: Callable[[str], bool], timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while not predicate(self.output):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out; the terminal shows:\n{self.output[-3000:]}")
            ready, _, _ = select.select([self.master], [], [], min(remaining, 0.2))
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    chunk = b""
                if not chunk and self.process.poll() is not None:
                    raise AssertionError(f"top exited early:\n{self.output[-3000:]}")
                self.output += _ANSI.sub("", chunk.decode(errors="replace"))
        return self.output

    def drain(self) -> None:
        while True:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if not ready:
                return
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.output += _ANSI.sub("", chunk.decode(errors="replace"))

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def wait(self, timeout: float = 30.0) -> int:
        code = self.process.wait(timeout=timeout)
        self.drain()
        return code


@pytest.fixture
def endpoint() -> str:
    metrics = otel_perf.configure(json_port=0)
    for i in range(4):
        otel_perf.record_tool_call("slow_rare", True, 800.0 + i)
    for i in range(50):
        otel_perf.record_tool_call("busy_fast", True, 1.0 + i % 2)
    assert metrics.url is not None
    return metrics.url


@pytest.fixture
def terminal(endpoint: str) -> Iterator[Terminal]:
    master, slave = pty.openpty()
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METRICS_", "COLUMNS"))}
    env.update(TERM="xterm-256color", PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, "-c", _LAUNCH, "top", endpoint, "--interval", "0.3"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    term = Terminal(process, master)
    try:
        yield term
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        os.close(master)


def _last_frame(output: str, marker: str) -> str:
    return output[output.rindex(marker) :]


def test_s_toggles_the_sort_and_q_quits(terminal: Terminal) -> None:
    shown = terminal.read_until(lambda out: "busy_fast" in out and "q: quit" in out)
    frame = _last_frame(shown, "Tools (sorted by p95)")
    assert frame.index("slow_rare") < frame.index("busy_fast")
    assert "s: sort by calls" in frame

    terminal.type(b"s")
    shown = terminal.read_until(
        lambda out: "Tools (sorted by calls)" in out and "q: quit" in out.split("by calls")[-1]
    )
    frame = _last_frame(shown, "Tools (sorted by calls)")
    assert frame.index("busy_fast") < frame.index("slow_rare")

    # New calls show up on the next poll.
    otel_perf.record_tool_call("newcomer", True, 3.0)
    terminal.read_until(lambda out: "newcomer" in out)

    lflag = termios.tcgetattr(terminal.master)[3]
    assert not lflag & termios.ICANON  # cbreak while running
    terminal.type(b"q")
    assert terminal.wait() == 0
    assert "Traceback" not in terminal.output
    lflag = termios.tcgetattr(terminal.master)[3]
    assert lflag & termios.ICANON  # the terminal's settings are restored on the way out
    assert lflag & termios.ECHO


def test_lost_endpoint_is_retried_and_ctrl_c_exits_cleanly(terminal: Terminal) -> None:
    terminal.read_until(lambda out: "busy_fast" in out and "q: quit" in out)
    otel_perf.shutdown()  # the endpoint goes away under the running view
    terminal.read_until(lambda out: "cannot reach" in out and "(retrying)" in out)
    terminal.type(b"\x03")  # the terminal turns it into SIGINT: cbreak mode keeps signals
    assert terminal.wait() == 0
    assert "Traceback" not in terminal.output
    assert "KeyboardInterrupt" not in terminal.output
    assert termios.tcgetattr(terminal.master)[3] & termios.ICANON


def test_without_a_terminal_it_just_refreshes(endpoint: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METRICS_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "otel_perf", "top", endpoint, "--interval", "0.2"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None
    output = b""
    try:
        # Into a pipe, every refresh prints a new view: wait for three of them.
        deadline = time.monotonic() + 30.0
        while output.count(b"busy_fast") < 3:
            assert time.monotonic() < deadline, output.decode(errors="replace")
            ready, _, _ = select.select([process.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(process.stdout.fileno(), 65536)
                assert chunk, f"top exited early: {process.wait()}"
                output += chunk
        process.send_signal(signal.SIGINT)
        rest, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    assert process.returncode == 0
    text = (output + rest + err).decode()
    assert "Traceback" not in text
    assert "Ctrl-C: quit" in text  # no key help without a terminal
    assert "q: quit" not in text
