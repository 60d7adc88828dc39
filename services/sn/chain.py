"""The entry's view of the chain: opening the ledger, writing blocks, reading rounds and model versions.

Only the entry (M-SN) writes blocks. It talks to a ledger process over gRPC
(``--ledger HOST:PORT``) or, without one, embeds the ledger store (SQLite in its state dir,
or ``--db-url``). Both offer the same methods (tip, get, range, append, put_blob,
get_blob, verify), so everything here works with either.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fedchain.shared.config import Settings
from fedchain.shared.crypto import NodeKey

log = logging.getLogger("fedchain.chain")

SCAN_PAGE = 200


class LedgerLike(Protocol):
    """What the entry needs from a ledger (the gRPC client and the embedded store both fit)."""

    def tip(self) -> Any: ...
    def get(self, height: int) -> Any: ...
    def range(self, start: int, limit: int) -> list[Any]: ...
    def append(self, block: Any) -> Any: ...
    def put_blob(self, data: bytes) -> str: ...
    def get_blob(self, digest: str) -> bytes: ...
    def verify(self) -> Any: ...


def open_ledger(settings: Settings) -> LedgerLike:
    """A ledger client for ``--ledger``, else an embedded store in the state dir."""
    if settings.ledger:
        from fedchain.services.ledger.client import LedgerClient

        return LedgerClient(
            settings.ledger,
            tls_ca=settings.tls_ca,
            tls_cert=settings.tls_cert,
            tls_key=settings.tls_key,
            max_message_mb=settings.max_message_mb,
            chunk_kb=settings.chunk_kb,
        )
    from fedchain.services.ledger.server import open_ledger as open_embedded

    Path(settings.state_dir).mkdir(parents=True, exist_ok=True)
    return open_embedded(settings)  # SQLite ledger.db (or --db-url) and blobs/ in the state dir


@dataclass(frozen=True)
class ModelRef:
    """A global model version and the digest of its safetensors bytes."""

    version: int
    digest: str
    round: int
    algorithm: str


class EntryChain:
    """Block writing and chain queries for the entry (serialised by one lock)."""

    def __init__(self, ledger: LedgerLike, key: NodeKey) -> None:
        self.ledger = ledger
        self.key = key
        self._lock = threading.Lock()
        self.cached_height = -1
        """Tip height as last seen (what /status shows while the ledger is unreachable)."""

    def append(self, kind: str, payload: Any) -> Any:
        """Build the next block on the current tip, sign it with the entry key and append it.

        When the append fails (refused, timed out, connection lost) the tip is read again: if
        the block landed anyway (the ledger committed it but the reply was lost), it is
        returned as appended; otherwise the original error is raised.
        """
        from fedchain.shared.chain.blocks import BlockKind, build_block

        with self._lock:
            prev = self.ledger.tip()
            block = build_block(BlockKind(kind), payload, prev, self.key)
            try:
                stored = self.ledger.append(block)
            except Exception:
                stored = self._landed(block)
                if stored is None:
                    raise
                log.warning("block %d (%s) was stored although its append failed; keeping it", block.height, kind)
            self.cached_height = max(self.cached_height, int(stored.height))
            return stored

    def _landed(self, block: Any) -> Any | None:
        """The stored block at ``block``'s height when it is ``block`` itself (same hash), else None."""
        try:
            stored = self.ledger.get(int(block.height))
        except Exception:  # noqa: BLE001 - the ledger is still unreachable: the append stays failed
            return None
        if stored is not None and bytes(stored.hash) == bytes(block.hash):
            return stored
        return None

    def height(self) -> int:
        """Height of the tip, -1 for an empty chain."""
        tip = self.ledger.tip()
        self.cached_height = -1 if tip is None else int(tip.height)
        return self.cached_height

    def blocks(self, start: int = 0, kind: str | None = None) -> list[Any]:
        """Every block from ``start`` (optionally one kind), paging through the ledger."""
        out: list[Any] = []
        h = start
        top = self.height()
        while h <= top:
            page = self.ledger.range(h, SCAN_PAGE)
            if not page:
                break
            out.extend(b for b in page if kind is None or str(b.kind) == kind)
            h = int(page[-1].height) + 1
        return out

    def genesis(self) -> Any | None:
        return None if self.height() < 0 else self.ledger.get(0)

    def latest_model(self) -> ModelRef:
        """The newest global model on the chain (last round block, else genesis)."""
        rounds = self.blocks(kind="round")
        if rounds:
            p = rounds[-1].payload
            return ModelRef(int(p.model_version), p.model_digest, int(p.round), p.algorithm)
        g = self.genesis()
        if g is None:
            raise LookupError("the chain is empty")
        return ModelRef(0, g.payload.model_digest, 0, "")

    def model_digest(self, version: int) -> str | None:
        """Digest of model ``version`` (0 = genesis), None if there is no such version."""
        if version == 0:
            g = self.genesis()
            return None if g is None else g.payload.model_digest
        for b in reversed(self.blocks(kind="round")):
            if int(b.payload.model_version) == version:
                return str(b.payload.model_digest)
        return None
