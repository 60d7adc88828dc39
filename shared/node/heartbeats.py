"""The heartbeat-and-re-join loop both node roles run.

A node beats one peer every ``interval`` seconds (an EN its SN, an SN the entry). Each beat
ends as a ``Beat``: the peer answered and knows the node, answered but does not know it, or
did not answer. ``RejoinAfter`` says, per kind of failure, how long failing beats may go on
before the node re-joins through the entry (``None``: never for that kind). A re-join that
fails is logged and tried again after the same time; the loop ends when its stop event is set.

Every heartbeat is signed by its sender (``signed_heartbeat``) and carries a counter: the
sender's wall clock in ms, strictly increasing. The receiver checks it with
``check_heartbeat``: the signature against the key it holds for the sender, then the
counter against a ``ReplayGuard`` (a counter not above the last accepted one is a replay; one
more than ``MAX_SKEW_MS`` from the receiver's clock is stale), so a forged or replayed beat
changes nothing.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fedchain.shared.config import ConfigError
from fedchain.shared.crypto import NodeKey
from fedchain.shared.net.signing import check_signed, heartbeat_fields
from fedchain.shared.net.statements import Domain, sign
from fedchain.shared.rpc import node_pb2 as pb

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


MAX_SKEW_MS = 60_000
"""A heartbeat whose counter is further than this from the receiver's clock is refused."""


class HeartbeatRefused(ValueError):
    """A replayed or stale heartbeat."""


class HeartbeatCounter:
    """A sender's counters: its wall clock in ms, never repeating and never going back."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            self._last = max(self._last + 1, int(self._clock() * 1000))
            return self._last


class ReplayGuard:
    """The last accepted counter of each sender (thread-safe)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._last: dict[str, int] = {}
        self._lock = threading.Lock()

    def admit(self, sender: str, counter: int) -> None:
        """Record ``counter`` for ``sender``; raise HeartbeatRefused for a replay or a stale one."""
        now = int(self._clock() * 1000)
        if abs(now - counter) > MAX_SKEW_MS:
            raise HeartbeatRefused(
                f"stale heartbeat from {sender}: its counter is {abs(now - counter) // 1000} s "
                "from this node's clock"
            )
        with self._lock:
            last = self._last.get(sender, 0)
            if counter <= last:
                raise HeartbeatRefused(f"replayed heartbeat from {sender} (counter {counter} <= {last})")
            self._last[sender] = counter

    def forget(self, sender: str) -> None:
        with self._lock:
            self._last.pop(sender, None)


def signed_heartbeat(
    key: NodeKey,
    chain_id: bytes,
    counter: int,
    *,
    role: str,
    address: str,
    http_address: str,
    state: str,
    alive_edges: list[str] | None = None,
) -> pb.HeartbeatRequest:
    """A heartbeat from ``key``'s node, signed over every field the receiver acts on."""
    req = pb.HeartbeatRequest(
        node_id=key.node_id, role=role, address=address, http_address=http_address,
        alive_edges=alive_edges or [], state=state, counter=counter,
    )
    req.signature = sign(key, Domain.HEARTBEAT, chain_id, heartbeat_fields(req))
    return req


def check_heartbeat(
    req: pb.HeartbeatRequest, public_key: bytes, chain_id: bytes, guard: ReplayGuard
) -> None:
    """Raise SignatureRefused (forged, wrong chain, wrong sender) or HeartbeatRefused (replay, stale)."""
    check_signed(
        public_key, bytes(req.signature), Domain.HEARTBEAT, chain_id, req.node_id, heartbeat_fields(req)
    )
    guard.admit(req.node_id, int(req.counter))
