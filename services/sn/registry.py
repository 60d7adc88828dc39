"""The entry's registry of admitted nodes: SNs, ENs, their parents, partitions and liveness.

The registry is the entry's working memory; admissions are also recorded on the chain
(node_joined blocks), and so are departures (node_left, when a member missed its
heartbeats for ``heartbeat_timeout``). It is saved to ``registry.json`` in the entry's state
dir after every change so a restarted entry knows its federation again.

Members are *active* (admitted, counted, assigned) or *departed* (left by heartbeat timeout).
A departed EN's partition is free for a replacement; when the departed node comes back with
the same key it is admitted again, on its old partition if that is still free. SNs are capped
by ``max_sns``, ENs by ``clients`` (one partition each).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

FIRST_HEARTBEAT_GRACE_S = 60.0
"""Extra time a newly admitted member has for its first heartbeat (an EN loads its data first)."""


@dataclass
class Member:
    """One admitted node."""

    node_id: str
    role: str  # "SN" | "EN"
    public_key: str  # hex
    address: str
    http_address: str
    parent_sn: str = ""  # EN: node id of its SN
    partition_index: int = -1  # EN: client partition
    entry: bool = False
    last_seen: float = field(default=0.0, compare=False)


class FederationFull(Exception):
    """Every partition index is held by an admitted EN."""


class NoSuperNode(Exception):
    """No live SN can take an EN."""


class SuperNodesFull(Exception):
    """``max_sns`` super nodes are admitted already."""


class Registry:
    """Thread-safe set of members with least-loaded SN assignment and heartbeat liveness."""

    def __init__(
        self,
        path: Path | None,
        heartbeat_timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path = path
        self._timeout = heartbeat_timeout
        self.clock = clock
        """The monotonic clock liveness is measured on (a test may replace it)."""
        self._lock = threading.RLock()
        self._members: dict[str, Member] = {}
        self._departed: dict[str, Member] = {}  # left by heartbeat timeout (may come back)
        self._heard: set[str] = set()  # members heard from since their (re-)admission
        self._alive_edges: dict[str, set[str]] = {}  # SN id -> ENs that heartbeat it
        if path is not None and path.is_file():
            for row in json.loads(path.read_text(encoding="utf-8")):
                left = bool(row.pop("left", False))
                m = Member(**row)
                m.last_seen = self.clock()  # give everyone one timeout to show up again
                (self._departed if left else self._members)[m.node_id] = m

    # ---- persistence ----
    def _save(self) -> None:
        if self._path is None:
            return
        rows = [{**asdict(m), "last_seen": 0.0} for m in self._members.values()]
        rows += [{**asdict(m), "last_seen": 0.0, "left": True} for m in self._departed.values()]
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps(rows, indent=1), encoding="utf-8")
        os.replace(tmp, self._path)

    # ---- queries ----
    def get(self, node_id: str) -> Member | None:
        with self._lock:
            return self._members.get(node_id)

    def members(self, role: str | None = None) -> list[Member]:
        with self._lock:
            return [m for m in self._members.values() if role is None or m.role == role]

    def is_alive(self, node_id: str) -> bool:
        with self._lock:
            m = self._members.get(node_id)
            if m is None:
                return False
            if m.entry:
                return True
            if m.role == "SN":
                return self.clock() - m.last_seen <= self._timeout
            parent = self._members.get(m.parent_sn)
            return (
                parent is not None
                and self.is_alive(parent.node_id)
                and node_id in self._alive_edges.get(parent.node_id, set())
            )

    def alive_sns(self) -> list[Member]:
        with self._lock:
            return [m for m in self.members("SN") if self.is_alive(m.node_id)]

    def edges_of(self, sn_id: str) -> list[Member]:
        with self._lock:
            return sorted(
                (m for m in self.members("EN") if m.parent_sn == sn_id),
                key=lambda m: m.partition_index,
            )

    def alive_edges(self) -> list[Member]:
        with self._lock:
            return [m for m in self.members("EN") if self.is_alive(m.node_id)]

    # ---- changes ----
    def add_entry(self, node_id: str, public_key: str, address: str, http_address: str) -> None:
        """Record the entry itself (an SN that is always alive)."""
        with self._lock:
            self._members[node_id] = Member(
                node_id, "SN", public_key, address, http_address, entry=True, last_seen=self.clock()
            )
            self._save()

    def admit_sn(
        self,
        node_id: str,
        public_key: str,
        address: str,
        http_address: str,
        max_sns: int | None = None,
    ) -> tuple[Member, bool]:
        """Add or refresh an SN; returns (member, is_new). Raises SuperNodesFull beyond ``max_sns``
        (the entry itself not counted)."""
        with self._lock:
            old = self._members.get(node_id)
            if old is None and max_sns is not None:
                admitted = [m for m in self.members("SN") if not m.entry]
                if len(admitted) >= max_sns:
                    raise SuperNodesFull(
                        f"the federation has its {max_sns} super nodes already (max_sns); "
                        "a super node's place is freed when it misses its heartbeats"
                    )
            m = Member(node_id, "SN", public_key, address, http_address, last_seen=self.clock())
            self._heard.discard(node_id)
            self._members[node_id] = m
            self._save()
            return m, old is None

    def admit_en(
        self,
        node_id: str,
        public_key: str,
        address: str,
        http_address: str,
        clients: int,
        avoid_sn: str = "",
    ) -> tuple[Member, bool]:
        """Assign an EN the least loaded live SN (the entry only when no other SN is up), other
        than ``avoid_sn`` unless that is the only one.

        A returning EN keeps its partition index; a departed one gets it back when it is still
        free (a replacement may hold it by then). Raises FederationFull / NoSuperNode.
        Returns (member, changed) where changed means it is new (or back) or its SN or index is.
        """
        with self._lock:
            old = self._members.get(node_id)
            if old is not None and old.partition_index >= 0:
                index = old.partition_index
            else:
                taken = {m.partition_index for m in self.members("EN")}
                free = [i for i in range(clients) if i not in taken]
                if not free:
                    raise FederationFull(
                        f"the federation is full: all {clients} partitions are taken (raise 'clients')"
                    )
                gone = self._departed.get(node_id)
                index = gone.partition_index if gone is not None and gone.partition_index in free else free[0]
            alive = self.alive_sns()
            # ``avoid_sn`` (the SN that stopped answering the EN) is a preference: when it is
            # the only one up — the entry, back from a restart — the EN goes back to it
            candidates = [s for s in alive if s.node_id != avoid_sn] or alive
            if not candidates:
                raise NoSuperNode("no super node is available to take this edge node; try again")
            others = [s for s in candidates if not s.entry] or candidates
            if old is not None and old.parent_sn in {s.node_id for s in others}:
                parent = old.parent_sn  # keep the current SN while it is alive
            else:
                load = {s.node_id: len(self.edges_of(s.node_id)) for s in others}
                parent = min(others, key=lambda s: (load[s.node_id], s.node_id)).node_id
            m = Member(
                node_id, "EN", public_key, address, http_address, parent, index,
                last_seen=self.clock(),
            )
            changed = old is None or old.parent_sn != parent or old.partition_index != index
            self._members[node_id] = m
            self._heard.discard(node_id)
            if old is not None and old.parent_sn:
                self._alive_edges.get(old.parent_sn, set()).discard(node_id)
            self._save()
            return m, changed

    def remove(self, node_id: str) -> None:
        """Forget a member (an admission whose chain record failed)."""
        with self._lock:
            self._members.pop(node_id, None)
            self._save()

    def departed(self, node_id: str) -> Member | None:
        """The member as it was when it left by heartbeat timeout (None: it never did)."""
        with self._lock:
            return self._departed.get(node_id)

    def expired(self) -> list[Member]:
        """Active members (never the entry) silent for longer than the heartbeat timeout.

        An SN is silent when it sent the entry no heartbeat; an EN when no heartbeat of its SN
        (or the entry's own SN part) listed it among the ENs it hears from. A member not heard
        from since it was admitted (or since the entry started) has ``FIRST_HEARTBEAT_GRACE_S``
        more: an EN loads its data share before it sends its first heartbeat.
        """
        with self._lock:
            now = self.clock()
            return [
                m for m in self._members.values()
                if not m.entry and now - m.last_seen > self._limit(m.node_id)
            ]

    def _limit(self, node_id: str) -> float:
        return self._timeout + (0.0 if node_id in self._heard else FIRST_HEARTBEAT_GRACE_S)

    def depart(self, node_id: str) -> Member | None:
        """Move an active member to the departed (its partition is free from now on)."""
        with self._lock:
            m = self._members.pop(node_id, None)
            if m is None:
                return None
            self._departed[node_id] = m
            self._alive_edges.pop(node_id, None)
            for edges in self._alive_edges.values():
                edges.discard(node_id)
            self._save()
            return m

    def heartbeat(self, node_id: str, address: str, http_address: str, alive_edges: list[str]) -> bool:
        """Refresh an SN's liveness and the ENs it sees; False when the SN is unknown."""
        with self._lock:
            m = self._members.get(node_id)
            if m is None or m.role != "SN":
                return False
            m.last_seen = self.clock()
            self._heard.add(node_id)
            changed = (m.address, m.http_address) != (address, http_address)
            m.address, m.http_address = address, http_address
            self._edges_seen(node_id, alive_edges)
            if changed:
                self._save()
            return True

    def _edges_seen(self, sn_id: str, alive_edges: list[str]) -> None:
        mine = {e.node_id: e for e in self.edges_of(sn_id)}
        seen = set(alive_edges) & set(mine)
        self._alive_edges[sn_id] = seen
        now = self.clock()
        for node_id in seen:
            mine[node_id].last_seen = now
        self._heard |= seen

    def set_entry_edges(self, entry_id: str, alive_edges: list[str]) -> None:
        """The entry's own SN part reports which of its ENs are alive."""
        with self._lock:
            self._edges_seen(entry_id, alive_edges)
