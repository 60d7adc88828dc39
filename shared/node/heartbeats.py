"""The heartbeat-and-re-join loop both node roles run.

A node beats one peer every ``interval`` seconds (an EN its SN, an SN the entry). Each beat
ends as a ``Beat``: the peer answered and knows the node, answered but does not know it, or
did not answer. ``RejoinAfter`` says, per kind of failure, how long failing beats may go on
before the node re-joins through the entry (``None``: never for that kind). A re-join that
fails is logged and tried again after the same time; the loop ends when its stop event is set.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fedchain.shared.config import ConfigError

log = logging.getLogger("fedchain.node")


class Beat(enum.Enum):
    """How one heartbeat ended."""

    KNOWN = "known"
    """The peer answered and knows this node."""
    UNKNOWN = "unknown"
    """The peer answered but does not know this node (it restarted, or dropped us)."""
    UNANSWERED = "unanswered"
    """The RPC failed: the peer is down, slow or unreachable."""


@dataclass(frozen=True)
class RejoinAfter:
    """Seconds of failing beats of each kind before the node re-joins (``None``: never)."""

    unknown: float | None
    unanswered: float | None

    def limit(self, beat: Beat) -> float | None:
        return self.unknown if beat is Beat.UNKNOWN else self.unanswered


def beat_timeout(interval: float) -> float:
    """The RPC timeout of one heartbeat: the interval, but at least 1 s."""
    return max(1.0, interval)


class HeartbeatLoop:
    """Beat a peer every ``interval``; re-join through ``rejoin`` when ``rejoin_after`` says so.

    ``beat(timeout)`` sends one heartbeat (an RPC bounded by ``timeout``) and classifies it;
    ``rejoin()`` re-joins through the entry and raises ``ConfigError`` when that fails.
    """

    def __init__(
        self,
        beat: Callable[[float], Beat],
        rejoin: Callable[[], object],
        *,
        interval: float,
        rejoin_after: RejoinAfter,
        stop: threading.Event,
        beat_at_start: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.beat = beat
        self.rejoin = rejoin
        self.interval = interval
        self.rejoin_after = rejoin_after
        self.stop = stop
        self.beat_at_start = beat_at_start
        self._clock = clock
        self._failing_since: float | None = None

    def run(self) -> None:
        """Beat until the stop event is set (a thread's target)."""
        if self.beat_at_start and not self.stop.is_set():
            self.step()
        while not self.stop.wait(self.interval):
            self.step()

    def step(self) -> None:
        """One beat, and a re-join if the failures have lasted long enough."""
        outcome = self.beat(beat_timeout(self.interval))
        if outcome is Beat.KNOWN:
            self._failing_since = None
            return
        now = self._clock()
        if self._failing_since is None:
            self._failing_since = now
        limit = self.rejoin_after.limit(outcome)
        if limit is None or now - self._failing_since < limit:
            return
        try:
            self.rejoin()
            self._failing_since = None
        except ConfigError as exc:
            if not self.stop.is_set():
                log.warning("re-join failed: %s", exc)
            self._failing_since = self._clock()
