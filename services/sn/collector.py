"""Collecting the updates of one round: accepted tensors, rejections, and when to stop waiting.

An SN uses one ``RoundCollector`` per round for its ENs' updates; the M-SN uses one for
the SNs' aggregates. Waiting ends when every expected sender has answered (accepted or
rejected), was declared dead by the liveness callback, or the deadline passed.

The collector also says how the round aggregates (``aggregator``, the federation's rule):
with the plain mean an SN sends partial sums; with any other rule (``forward``) it keeps
each accepted update's bytes (``Accepted.data``) and forwards them for the entry to run the
rule over every EN update of the round (docs/protocol.md, "Robust aggregation").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from fedchain.shared.fl.robust_spec import parse_aggregator


@dataclass
class Accepted:
    """One accepted update."""

    node_id: str
    state: dict[str, torch.Tensor]
    samples: int
    digest: str
    train_loss: float
    extra: dict[str, object] = field(default_factory=dict)
    train_seconds: float = 0.0
    signature: bytes = b""
    """The sender's own signature over its update header (relayed to the entry)."""
    data: bytes = b""
    """The update's bytes as the sender sent them (handed to the entry to be kept)."""


class RoundCollector:
    """Thread-safe record of one round's submissions."""

    def __init__(
        self,
        round_no: int,
        version: int,
        algorithm: str,
        expected: set[str],
        deadline: float,
        aggregator: str = "mean",
    ) -> None:
        self.round = round_no
        self.version = version
        self.algorithm = algorithm
        self.expected = set(expected)
        self.deadline = deadline
        self._cond = threading.Condition()
        self.accepted: dict[str, Accepted] = {}
        self.rejected: list[tuple[str, str]] = []
        self._answered: set[str] = set()
        self.closed = False
        self.superseded = False  # a newer OpenRound replaced this one: do not submit
        self.reference: dict[str, torch.Tensor] | None = None  # what an update must match
        self.aggregator = str(parse_aggregator(aggregator))
        self.forward = not parse_aggregator(aggregator).decomposable
        """True when updates go up whole (a robust rule): SNs keep and forward their bytes."""

    def has_answered(self, node_id: str) -> bool:
        with self._cond:
            return node_id in self._answered

    def accept(self, item: Accepted) -> bool:
        """Record an accepted update; False when the round is closed or the node already answered."""
        with self._cond:
            if self.closed or item.node_id in self._answered:
                return False
            self.accepted[item.node_id] = item
            self._answered.add(item.node_id)
            self._cond.notify_all()
            return True

    def reject(self, node_id: str, reason: str) -> None:
        """Record a refused update (listed in the round block)."""
        with self._cond:
            if self.closed:
                return
            self.rejected.append((node_id, reason))
            if node_id in self.expected:
                self._answered.add(node_id)
            self._cond.notify_all()

    def drop(self, node_id: str, reason: str) -> None:
        """Stop waiting for ``node_id`` (it did not take part); listed as rejected."""
        self.reject(node_id, reason)

    def wait(self, is_alive: Callable[[str], bool], poll: float = 0.2) -> None:
        """Block until all expected senders answered, died, or the deadline passed; then close."""
        while True:
            with self._cond:
                if self.superseded:
                    self.closed = True
                    return
                pending = self.expected - self._answered
                if not pending or time.monotonic() >= self.deadline:
                    break
            dead = [n for n in pending if not is_alive(n)]
            for n in dead:
                self.drop(n, "node stopped answering during the round")
            with self._cond:
                if self.expected - self._answered:
                    self._cond.wait(timeout=poll)
        with self._cond:
            for n in sorted(self.expected - self._answered):
                self.rejected.append((n, "timed out: no update before the round deadline"))
                self._answered.add(n)
            self.closed = True

    def refuse(self, node_id: str, reason: str) -> None:
        """After the wait: take back an accepted submission and list it as rejected."""
        with self._cond:
            if self.accepted.pop(node_id, None) is not None:
                self.rejected.append((node_id, reason))

    def total_samples(self) -> int:
        with self._cond:
            return sum(a.samples for a in self.accepted.values())
