"""What the entry's parts need from the rest of the process, as protocols.

The entry is built from these collaborators; the process passes the real ones (the
``EntryChain`` over the ledger, ``Peers``, the entry's own ``SuperNode``), a test passes
in-memory fakes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterator, Sequence
from typing import Any, Protocol

from fedchain.services.sn.chain import ModelRef
from fedchain.shared.node.trust import EntryTrust
from fedchain.shared.rpc import node_pb2 as pb


class BlobStore(Protocol):
    """The blob side of the ledger."""

    def put_blob(self, data: bytes) -> str: ...

    def get_blob(self, digest: str) -> bytes: ...


class LedgerView(BlobStore, Protocol):
    """The ledger as the entry's HTTP API reads it (blocks by range, verification)."""

    def range(self, start: int, limit: int) -> list[Any]: ...

    def verify(self) -> Any: ...


class ChainWriter(Protocol):
    """The entry's view of the chain (``services/sn/chain.py`` ``EntryChain``).

    Its methods raise ``fedchain.shared.ledger.errors.LedgerError`` subclasses when the
    ledger is down or refuses.
    """

    @property
    def ledger(self) -> LedgerView: ...

    @property
    def cached_height(self) -> int: ...

    def append(self, kind: str, payload: Any) -> Any: ...

    def height(self) -> int: ...

    def genesis(self) -> Any | None: ...

    def latest_model(self) -> ModelRef: ...

    def model_digest(self, version: int) -> str | None: ...

    def blocks(self, start: int = 0, kind: str | None = None) -> list[Any]: ...

    def check_head(self) -> None: ...

    def latest_head(self) -> Any | None: ...

    def consistency(self, from_size: int, to_size: int) -> list[bytes]: ...


class NodeStub(Protocol):
    """The RPCs the entry calls on an SN (a gRPC ``NodeStub`` or a fake)."""

    def AssignEdge(self, request: pb.EdgeInfo, timeout: float | None = None) -> pb.Ack: ...

    def OpenRound(
        self, request: pb.OpenRoundRequest, timeout: float | None = None
    ) -> pb.OpenRoundReply: ...

    def Evaluate(
        self, request: pb.EvaluateRequest, timeout: float | None = None
    ) -> pb.EvaluateReply: ...


class PeerDirectory(Protocol):
    """A stub per peer address (``shared/node/peers.py`` ``Peers``)."""

    def stub(self, address: str) -> Any: ...


class EdgeView(Protocol):
    """An EN as the entry's SN part holds it."""

    @property
    def node_id(self) -> str: ...


class EdgePoolView(Protocol):
    def alive(self) -> Sequence[EdgeView]: ...


class OwnSuperNode(Protocol):
    """The entry's own SN part (``services/sn/supernode.py`` ``SuperNode``)."""

    @property
    def edges(self) -> EdgePoolView: ...

    def remember_model(self, data: bytes) -> str: ...

    def used_update_bytes(self, round_no: int, digests: Collection[str]) -> dict[str, bytes]: ...

    def assign_edge(self, info: pb.EdgeInfo) -> None: ...

    def sync_edges(self, infos: list[pb.EdgeInfo]) -> None: ...

    trust: EntryTrust | None
    """The chain id and entry key the SN part checks the entry's requests against."""


class Clock:
    """Wall and monotonic time, and waiting on a stop event (a test may shorten the waits)."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        """Wait up to ``seconds`` for ``stop``; True when it is set."""
        return stop.wait(seconds)


AggregateStream = Iterator[pb.AggregatePart]
UpdateStream = Iterator[pb.UpdatePart]
