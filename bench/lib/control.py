"""Run control of a benchmark: SIGTERM as SystemExit, bounded waits, the process group.

Child processes go through the one launcher, ``fedchain.shared.processes``: each child
logs to ``<log_dir>/<name>.log`` and is stopped with all its descendants, so an error or
Ctrl-C never leaves a process behind.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

from fedchain.shared import processes
from lib import BenchError


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit(143) so ``with`` blocks stop the children they started."""

    def _raise(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _raise)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    """Poll ``predicate`` until it is true; raise BenchError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")


class ProcessGroup(processes.ProcessGroup):
    """The launcher's process group, reporting a child that exited as a BenchError."""

    def check_alive(self) -> None:
        try:
            super().check_alive()
        except processes.ChildExited as exc:
            raise BenchError(str(exc)) from None

    def any_exited(self) -> bool:
        """True once any child has exited."""
        return any(not c.running() for c in self.children)
