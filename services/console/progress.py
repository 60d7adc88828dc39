"""Following a training run: poll /status and /rounds until the target round is reached.

Ctrl-C while following leaves the display and returns; the training goes on. The loop is
bounded by the caller's ``timeout`` (and each poll by the client's HTTP timeout).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

from fedchain.services.console.client import ControlClient
from fedchain.services.console.errors import ConsoleError
from fedchain.services.console.spec import Outcome

ACTIVE_STATES = frozenset({"training", "pausing"})


class TrainingView(Protocol):
    """A display of a training run that is updated after every poll."""

    def update(self, status: Mapping[str, Any], rounds: list[dict[str, Any]]) -> None: ...


ViewFactory = Callable[[Mapping[str, Any]], AbstractContextManager[TrainingView]]


def _round_of(entry: Any) -> int:
    try:
        return int(entry.get("round", 0))
    except (AttributeError, TypeError, ValueError):
        return 0


def follow_training(
    client: ControlClient,
    open_view: ViewFactory,
    start: Mapping[str, Any],
    prev_round: int,
    timeout: float | None,
    poll_interval: float = 0.5,
    settle_seconds: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Poll until round ``start['target_round']`` is done; return the rounds of this run.

    Raises :class:`ConsoleError` when training stops short of the target (paused, or the
    node went idle) or when ``timeout`` seconds pass; returns an interrupted outcome on Ctrl-C.
    """
    target = int(start.get("target_round") or 0)
    deadline = clock() + timeout if timeout is not None else None
    rounds: list[dict[str, Any]] = []
    seen_round = prev_round
    status: Mapping[str, Any] = {}
    inactive_since: float | None = None

    def result(interrupted: bool = False) -> Outcome:
        data = {"start": dict(start), "status": dict(status), "rounds": rounds}
        return Outcome("train", data, interrupted=interrupted)

    with open_view(start) as view:
        try:
            while True:
                status = client.status()
                current = int(status.get("round") or 0)
                if current != seen_round:
                    rounds = [r for r in client.rounds() if prev_round < _round_of(r) <= target]
                    seen_round = current
                view.update(status, rounds)
                if current >= target:
                    return result()
                state = status.get("state")
                now = clock()
                if state in ACTIVE_STATES:
                    inactive_since = None
                else:
                    inactive_since = now if inactive_since is None else inactive_since
                    if now - inactive_since >= settle_seconds:
                        hint = "; train() resumes" if state == "paused" else ""
                        raise ConsoleError(
                            f"training stopped after round {current} of {target} (state: {state}){hint}"
                        )
                if deadline is not None and now >= deadline:
                    raise ConsoleError(
                        f"training still running after {timeout:g} s (round {current} of {target}); "
                        "it goes on - status() to check"
                    )
                wait = poll_interval if deadline is None else max(0.0, min(poll_interval, deadline - now))
                sleep(wait)
        except KeyboardInterrupt:
            return result(interrupted=True)
