"""The real `fedchain console` REPL on a pseudo-terminal: live progress and Ctrl-C.

Ctrl-C while a training is followed leaves the display and returns to the prompt; the
training goes on (the node is never asked to pause). The console is started with SIGINT
ignored (as from a background job): it must restore the handler for Ctrl-C to work.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from fake_control_node import TOKEN, RunningNode

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def _controlling_terminal() -> None:
    """In the child: a new session whose controlling terminal is the pty (so Ctrl-C is SIGINT),
    with SIGINT ignored as a background job would hand it down: the console must restore it."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Terminal:
    """A child process on a pty, with bounded waits for its output."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True,
                                     preexec_fn=_controlling_terminal)  # noqa: PLW1509 - three syscalls
        os.close(slave)
        self.seen = ""

    def expect(self, pattern: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = ANSI.sub("", self.seen)
            if re.search(pattern, text):
                return text
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    self.seen += os.read(self.master, 65536).decode(errors="replace")
                except OSError:
                    break
        raise AssertionError(f"did not see {pattern!r} within {timeout} s; screen:\n{ANSI.sub('', self.seen)[-2000:]}")

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def close(self) -> int:
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise
        finally:
            os.close(self.master)


@pytest.mark.skipif(sys.platform != "linux", reason="needs a Linux pty")
def test_live_progress_and_ctrl_c_leave_training_running(fake_node: RunningNode, tmp_path: Path) -> None:
    env = dict(
        os.environ,
        FEDCHAIN_API_TOKEN=TOKEN,
        FEDCHAIN_HOME=str(tmp_path),
        TERM="xterm",
        PROMPT_TOOLKIT_NO_CPR="1",
        COLUMNS="120",
        LINES="40",
    )
    args = [
        sys.executable,
        "-m",
        "fedchain.services.cli.main",
        "console",
        "--port",
        str(fake_node.port),
        "--poll",
        "0.2",
    ]
    term = Terminal(args, env)
    try:
        term.expect(r"connected to entry SN n-fake0000000000")
        term.expect(r"fedchain>")
        term.send("train(rounds=500)\r")
        term.expect(r"Ctrl-C leaves this display")
        term.expect(r"│\s+3 │ fedper")  # the live table shows rounds as they finish
        term.send("\x03")
        term.expect(r"left the progress display at round \d+ of 500; training goes on")
        term.send("status()\r")
        term.expect(r"state\s+training")
        term.send("quit()\r")
        assert term.close() == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
            term.proc.wait(timeout=10)
    assert fake_node.node.state == "training"
    assert fake_node.node.train_calls == [{"rounds": 500, "algorithm": "fedper"}]
    assert "train(rounds=500)" in (tmp_path / "console_history").read_text()
    assert "Traceback" not in term.seen
