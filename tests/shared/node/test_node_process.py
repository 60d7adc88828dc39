"""A node process stops on SIGTERM however its shutdown goes: promptly when it is clean, and by
the stop watchdog when something would hold it (never left for an orchestrator to SIGKILL)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from tests.conftest import REPO

NODE = """
import logging, sys, threading, time
from fedchain.shared.node.process import StopFlag
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
stop = StopFlag(deadline_s={deadline})
if {hang}:
    threading.Thread(target=time.sleep, args=(3600,)).start()  # the interpreter would wait for it
print("ready", flush=True)
stop.wait()
print("stopping", flush=True)
"""


def _stop(deadline: float, hang: bool) -> tuple[int, float, str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", NODE.format(deadline=deadline, hang=hang)], cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        return proc.returncode, time.monotonic() - t0, err
    finally:
        proc.kill()


def test_a_shutdown_that_would_hang_is_ended_by_the_watchdog() -> None:
    code, seconds, err = _stop(deadline=1.0, hang=True)
    assert code == 0 and seconds < 10, (code, seconds, err)
    assert "still stopping 1 s after the stop signal; exiting now" in err


def test_a_clean_shutdown_does_not_wait_for_the_watchdog() -> None:
    code, seconds, err = _stop(deadline=20.0, hang=False)
    assert code == 0 and seconds < 10, (code, seconds, err)
    assert "exiting now" not in err
