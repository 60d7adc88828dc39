"""Following a training run: poll /status and /rounds until the target round is reached.

Ctrl-C while following leaves the display and returns; the training goes on. The loop is
bounded by the caller's ``timeout`` (and each poll by the client's HTTP timeout).

Short outages are waited out: while the entry restarts (nothing answers) or answers 502/503/504
(its ledger or database is down), following says what it waits for and keeps polling for up
to ``outage_seconds`` (``OUTAGE_SECONDS`` by default), then gives up with one line. Training
goes on at the node either way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol, TypeVar

from fedchain.services.console.errors import ApiError, ConnectError, ConsoleError
from fedchain.services.console.spec import Outcome
from fedchain.shared.control_api import NodeStatus, RoundSummary, TrainStarted

T = TypeVar("T")

ACTIVE_STATES = frozenset({"training", "pausing"})

OUTAGE_SECONDS = 120.0
"""How long following waits for a node that stopped answering before it gives up."""

TRANSIENT_STATUS = frozenset({502, 503, 504})


def is_transient(exc: ConsoleError) -> bool:
    """True for failures a restart or a database coming back cures: nothing answers, no answer
    in time, or the node says it is unavailable. A refused token or a bad request is not."""
    if isinstance(exc, ApiError):
        return exc.status_code in TRANSIENT_STATUS
    return isinstance(exc, ConnectError)


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
    notice: Callable[[str], None] = lambda _message: None,
    outage_seconds: float = OUTAGE_SECONDS,
) -> Outcome:
    """Poll until round ``start.target_round`` is done; return the rounds of this run.

    The outcome's data is ``{"start": TrainStarted, "status": NodeStatus | None,
    "rounds": [RoundSummary]}``. Raises :class:`ConsoleError` when training stops short of
    the target (paused, or the node went idle), when ``timeout`` seconds pass, or when the
    node has not answered for ``outage_seconds``; returns an interrupted outcome on Ctrl-C.
    ``notice`` gets one line when an outage starts and one when it ends.
    """
    target = start.target_round
    deadline = clock() + timeout if timeout is not None else None
    rounds: list[RoundSummary] = []
    seen_round = prev_round
    status: NodeStatus | None = None
    inactive_since: float | None = None
    outage_since: float | None = None

    def poll(fetch: Callable[[], T]) -> T | None:
        """``fetch()``, or None while an outage is being waited out."""
        nonlocal outage_since
        try:
            value = fetch()
        except ConsoleError as exc:
            if not is_transient(exc):
                raise
            now = clock()
            if outage_since is None:
                outage_since = now
                notice(f"waiting for the node: {exc} (up to {outage_seconds:g} s; training goes on there)")
            elif now - outage_since >= outage_seconds:
                raise ConsoleError(
                    f"gave up after waiting {outage_seconds:g} s: {exc}; training may go on - "
                    "status() to check"
                ) from None
            return None
        if outage_since is not None:
            notice(f"the node answers again after {clock() - outage_since:.0f} s")
            outage_since = None
        return value

    def result(interrupted: bool = False) -> Outcome:
        data = {"start": start, "status": status, "rounds": rounds}
        return Outcome("train", data, interrupted=interrupted)

    with open_view(start) as view:
        try:
            while True:
                polled = poll(client.status)
                fresh = None if polled is None or polled.round == seen_round else poll(client.rounds)
                if polled is None or (polled.round != seen_round and fresh is None):
                    _check_deadline(deadline, clock(), timeout, seen_round, target)
                    sleep(poll_interval)
                    continue
                status = polled
                current = status.round
                if fresh is not None:
                    rounds = [r for r in fresh if prev_round < r.round <= target]
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
                _check_deadline(deadline, now, timeout, current, target)
                wait = poll_interval if deadline is None else max(0.0, min(poll_interval, deadline - now))
                sleep(wait)
        except KeyboardInterrupt:
            return result(interrupted=True)


def _check_deadline(deadline: float | None, now: float, timeout: float | None, current: int, target: int) -> None:
    if deadline is not None and now >= deadline:
        raise ConsoleError(
            f"training still running after {timeout:g} s (round {current} of {target}); "
            "it goes on - status() to check"
        )
