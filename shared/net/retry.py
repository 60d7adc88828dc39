"""Retrying a call to a peer that may not answer yet: one policy, on tenacity.

Every place a node tries again (a join through the entry, the entry waiting for its ledger,
an SN submitting its aggregate) retries through ``RetryPolicy.call``, so that they all pause
the same way: exponentially longer each time (``first_s``, times ``factor``), with up to
``jitter_s`` of random jitter so that nodes restarted together do not retry in step, and
never longer than ``max_s``. A call ends

- with the result, as soon as an attempt succeeds;
- with the attempt's error, at once, when ``retry_on`` says that error is not worth retrying;
- with the last error, when ``attempts`` are used up or the next pause would end past
  ``deadline_s`` (counted from the first attempt);
- with ``RetryInterrupted``, when the node's stop event is set: no attempt starts after it
  and a pause ends at once, so a SIGTERM stops a retrying node promptly.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

import tenacity
from tenacity.stop import stop_base
from tenacity.wait import wait_base

T = TypeVar("T")


class RetryInterrupted(Exception):
    """The stop event was set while retrying: the call ended without a result."""


@dataclass(frozen=True)
class RetryPolicy:
    """How to retry: exponential pauses with jitter and a cap, bounded by attempts and a deadline."""

    first_s: float = 0.3
    """The first pause (before jitter)."""
    factor: float = 2.0
    """Each pause is this many times the one before (until ``max_s``)."""
    max_s: float = 3.0
    """The longest pause, jitter included."""
    jitter_s: float = 0.3
    """Up to this much random time is added to each pause."""
    attempts: int | None = None
    """At most this many attempts (None: as many as the deadline allows)."""
    deadline_s: float | None = None
    """No pause ends later than this long after the first attempt started (None: no deadline)."""

    def __post_init__(self) -> None:
        if self.first_s <= 0 or self.factor < 1:
            raise ValueError("a retry policy needs first_s > 0 and factor >= 1")
        if not 0 <= self.jitter_s <= self.max_s or self.first_s > self.max_s:
            raise ValueError("a retry policy needs 0 <= jitter_s <= max_s and first_s <= max_s")
        if self.attempts is not None and self.attempts < 1:
            raise ValueError("a retry policy needs attempts >= 1")
        if self.deadline_s is not None and self.deadline_s <= 0:
            raise ValueError("a retry policy needs deadline_s > 0")

    def within(self, deadline_s: float) -> RetryPolicy:
        """This policy with a total deadline of ``deadline_s``."""
        return replace(self, deadline_s=deadline_s)

    def wait(self) -> wait_base:
        """The pauses: ``first_s * factor**(n-1)`` capped, plus jitter, never above ``max_s``."""
        exponential = tenacity.wait_exponential(
            multiplier=self.first_s, exp_base=self.factor, min=0, max=self.max_s - self.jitter_s
        )
        return exponential + tenacity.wait_random(0, self.jitter_s)

    def _stop(self) -> stop_base:
        stop: stop_base = tenacity.stop_never
        if self.attempts is not None:
            stop = stop | tenacity.stop_after_attempt(self.attempts)
        if self.deadline_s is not None:
            stop = stop | tenacity.stop_before_delay(self.deadline_s)
        return stop

    def call(
        self,
        attempt: Callable[[], T],
        *,
        retry_on: Callable[[BaseException], bool],
        stop: threading.Event | None = None,
        on_retry: Callable[[BaseException, float], None] | None = None,
    ) -> T:
        """``attempt()``'s result, retried while it raises an error ``retry_on`` accepts.

        ``on_retry(error, pause)`` is told of each failure that will be retried (to log it).
        Raises the error that ended the retrying, or ``RetryInterrupted`` once ``stop`` is set.
        """
        event = stop if stop is not None else threading.Event()

        def guarded() -> T:
            if event.is_set():
                raise RetryInterrupted("stopped while retrying")
            return attempt()

        def pause(seconds: float) -> None:
            if event.wait(seconds):
                raise RetryInterrupted("stopped while retrying")

        def before_sleep(state: tenacity.RetryCallState) -> None:
            if on_retry is not None and state.outcome is not None:
                error = state.outcome.exception()
                if error is not None:
                    on_retry(error, state.upcoming_sleep)

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda e: not isinstance(e, RetryInterrupted) and retry_on(e)),
            wait=self.wait(),
            stop=self._stop(),
            sleep=pause,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(guarded)


RETRY = RetryPolicy()
"""The policy every node uses (each call site adds its own attempts or deadline)."""
