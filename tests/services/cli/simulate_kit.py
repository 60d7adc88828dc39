"""Running `fedchain simulate` as a user would: a real process, a real Ctrl-C (SIGINT)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def interrupt_simulate(args: list[str], cwd: Path, once: Path, wait_s: float = 240) -> tuple[int, str]:
    """Start ``fedchain simulate ARGS``, send SIGINT as soon as ``once`` exists (a round's
    file), and return the exit code and stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDCHAIN_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fedchain.services.cli.main", "simulate", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd,
    )
    try:
        deadline = time.monotonic() + wait_s
        while not once.exists() and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, err
