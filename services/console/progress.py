"""Following a training run: poll /status and /rounds until the target round is reached.

Ctrl-C while following leaves the display and returns; the training goes on. The loop is
bounded by the caller's ``timeout`` (and each poll by the client's HTTP timeout).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol

from fedchain.services.console.errors import ConsoleError
from fedchain.services.console.spec import Outcome
from fedchain.shared.control_api import NodeStatus, RoundSummary, TrainStarted

ACTIVE_STATES = frozenset({"training", "pausing"})


class StatusSource(Protocol):
    """What following needs from the client: /status and /rounds."""

    def status(self) -> NodeStatus: ...

    def rounds(self) -> list[RoundSummary]: ...


class TrainingView(Protocol):
    """A display of a training run that is updated after every poll."""

    def update(self, status: NodeStatus, rounds: list[RoundSummary]) -> None: ...


ViewFactory = Callable[[TrainStarted], AbstractContextManager[TrainingView]]


def follow_training(
    client: StatusSource,
    open_view: ViewFactory,
    start: TrainStarted,
    prev_round: int,
    timeout: float | None,
    poll_interval: float = 0.5,
    settle_seconds: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Poll until round ``start.target_round`` is done; return the rounds of this run.

    The outcome's data is ``{"start": TrainStarted, "status": NodeStatus | None,
    "rounds": [RoundSummary]}``. Raises :class:`ConsoleError` when training stops short of
    the target (paused, or the node went idle) or when ``timeout`` seconds pass; returns an
    interrupted outcome on Ctrl-C.
    """
    target = start.target_round
    deadline = clock() + timeout if timeout is not None else None
    rounds: list[RoundSummary] = []
    seen_round = prev_round
    status: NodeStatus | None = None
    inactive_since: float | None = None

    def result(interrupted: bool = False) -> Outcome:
        data = {"start": start, "status": status, "rounds": rounds}
        return Outcome("train", data, interrupted=interrupted)

    with open_view(start) as view:
        try:
            while True:
                status = client.status()
                current = status.round
                if current != seen_round:
                    rounds = [r for r in client.rounds() if prev_round < r.round <= target]
                    seen_round = current
                view.update(status, rounds)
                if current >= target:
                    return result()
                state = status.state
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
