"""An SN's view of its ENs: who the entry assigned to it and when each last sent a heartbeat."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass
class Edge:
    """An EN assigned to this SN."""

    node_id: str
    public_key: bytes
    address: str
    http_address: str
    partition_index: int
    last_seen: float = 0.0
    partition_size: int = 0
    """Training samples of its partition (from the entry's signed assignment; 0: unknown)."""


class EdgePool:
    """Thread-safe pool of assigned ENs with heartbeat liveness."""

    def __init__(self, heartbeat_timeout: float) -> None:
        self._timeout = heartbeat_timeout
        self._lock = threading.Lock()
        self._edges: dict[str, Edge] = {}

    def assign(self, edge: Edge) -> None:
        """Add or update an EN (keeps its liveness if already known)."""
        with self._lock:
            old = self._edges.get(edge.node_id)
            if old is not None:
                edge.last_seen = old.last_seen
            self._edges[edge.node_id] = edge

    def replace_all(self, edges: list[Edge]) -> None:
        """Make the pool exactly ``edges`` (the entry's authoritative list)."""
        with self._lock:
            fresh: dict[str, Edge] = {}
            for e in edges:
                old = self._edges.get(e.node_id)
                if old is not None:
                    e.last_seen = old.last_seen
                fresh[e.node_id] = e
            self._edges = fresh

    def beat(self, node_id: str, address: str, http_address: str) -> bool:
        """Record a heartbeat; False when the EN is not assigned here."""
        with self._lock:
            e = self._edges.get(node_id)
            if e is None:
                return False
            e.last_seen = time.monotonic()
            e.address, e.http_address = address, http_address
            return True

    def get(self, node_id: str) -> Edge | None:
        with self._lock:
            return self._edges.get(node_id)

    def is_alive(self, node_id: str) -> bool:
        with self._lock:
            e = self._edges.get(node_id)
            return e is not None and time.monotonic() - e.last_seen <= self._timeout

    def alive(self) -> list[Edge]:
        with self._lock:
            now = time.monotonic()
            return sorted(
                (e for e in self._edges.values() if now - e.last_seen <= self._timeout),
                key=lambda e: e.partition_index,
            )

    def count(self) -> int:
        with self._lock:
            return len(self._edges)
