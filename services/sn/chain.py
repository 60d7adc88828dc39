"""The entry's view of the chain: opening the ledger, writing blocks, reading rounds and model versions.

Only the entry (M-SN) writes blocks. It talks to a ledger process over gRPC
(``--ledger HOST:PORT``, ``LedgerClient``) or, without one, uses an embedded ledger store
that the composition root (``fedchain node``) hands in as a factory. Both implement
``LedgerContract``, so everything here works with either.

After every block the entry signs a tree head (``TreeHead``: size and RFC 6962 root of the
block hashes), keeps it outside the database in ``<state_dir>/tree_head.json`` and gives it
to the ledger. At start-up ``check_head`` refuses a ledger whose chain is behind that head
or does not extend it (a truncated, rolled back or replaced chain).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedchain.shared.chain import merkle
from fedchain.shared.chain.blocks import Block, BlockKind, build_block
from fedchain.shared.chain.errors import ChainError
from fedchain.shared.chain.payloads import GenesisPayload, RoundPayload
from fedchain.shared.chain.treehead import TreeHead, check_extends, head_for
from fedchain.shared.config import ConfigError, Settings
from fedchain.shared.crypto import NodeKey
from fedchain.shared.ledger.client import LedgerClient
from fedchain.shared.ledger.contract import LedgerContract
from fedchain.shared.ledger.errors import LedgerCorrupt, LedgerError, LedgerUnavailable

log = logging.getLogger("fedchain.chain")

SCAN_PAGE = 200
TREE_HEAD_FILE = "tree_head.json"

LedgerFactory = Callable[[Settings], LedgerContract]
"""Opens the embedded ledger the settings describe (``db_url`` or SQLite in ``state_dir``)."""


def open_ledger(
    settings: Settings, embedded: LedgerFactory | None, key: NodeKey | None = None
) -> LedgerContract:
    """A ledger client for ``--ledger``, else the embedded store ``embedded`` opens.

    ``key``: the entry's key, which signs the client's blob uploads (a ledger service
    takes uploads only from the entry). Raises ConfigError when there is neither, LedgerError
    when the store cannot be opened.
    """
    if settings.ledger:
        return LedgerClient(
            settings.ledger,
            signer=key,
            tls_ca=settings.tls_ca,
            tls_cert=settings.tls_cert,
            tls_key=settings.tls_key,
            max_message_mb=settings.max_message_mb,
            chunk_kb=settings.chunk_kb,
        )
    if embedded is None:
        raise ConfigError("this entry has no embedded ledger: give --ledger HOST:PORT")
    Path(settings.state_dir).mkdir(parents=True, exist_ok=True)
    return embedded(settings)  # SQLite ledger.db (or --db-url) and blobs/ in the state dir


@dataclass(frozen=True)
class ModelRef:
    """A global model version and the digest of its safetensors bytes."""

    version: int
    digest: str
    round: int
    algorithm: str


class EntryChain:
    """Block writing and chain queries for the entry (serialised by one lock).

    Errors are the ledger contract's: ``LedgerUnavailable`` while the ledger cannot be
    reached, a ``LedgerRejected`` subclass for a refused block, ``LedgerCorrupt``.
    """

    def __init__(
        self, ledger: LedgerContract, key: NodeKey, state_dir: Path | None = None
    ) -> None:
        self.ledger = ledger
        self.key = key
        self._lock = threading.Lock()
        self.cached_height = -1
        """Tip height as last seen (what /status shows while the ledger is unreachable)."""
        self.head_path = None if state_dir is None else Path(state_dir) / TREE_HEAD_FILE
        """Where the entry keeps its last signed tree head (None: in memory only)."""
        self._leaves: list[bytes] | None = None
        self._head: TreeHead | None = None
        self.appended: list[Callable[[Block, float], None]] = []
        """Called with each appended block and the seconds its ledger append took (metrics)."""

    # ---- signed tree heads ----
    def latest_head(self) -> TreeHead | None:
        """The last tree head this entry signed (None before ``check_head`` or genesis)."""
        return self._head

    def consistency(self, from_size: int, to_size: int) -> list[bytes]:
        """RFC 6962 consistency proof from the first ``from_size`` blocks to ``to_size``.

        Served to SNs and ENs holding an older head (the proof verifies itself). Raises
        IndexError when the sizes are not ``0 <= from_size <= to_size <= blocks``.
        """
        with self._lock:
            leaves = self._leaves if self._leaves is not None else self._load_leaves()
            if not 0 <= from_size <= to_size <= len(leaves):
                raise IndexError(
                    f"no consistency proof from {from_size} to {to_size}: the chain has "
                    f"{len(leaves)} blocks"
                )
            return merkle.consistency_proof(leaves[:to_size], from_size)

    def _check_tip(self, prev: Block | None) -> None:
        """Refuse to build on a tip that is not the last block of this entry's signed head.

        The ledger's chain was cut back, rolled back to an older copy or rewritten under a
        running entry: appending would sign a head that does not extend its own.
        """
        if self._leaves is None or self._head is None:
            return
        if prev is not None and prev.height + 1 == len(self._leaves):
            if prev.hash == self._leaves[-1]:
                return
        leaves = self._load_leaves()
        now = head_for(leaves[0] if leaves else self._head.chain_id, leaves, 0)
        try:
            proof = (
                merkle.consistency_proof(leaves, self._head.size)
                if self._head.size <= len(leaves)
                else []
            )
            check_extends(self._head, now, proof)
        except ChainError as exc:
            raise LedgerCorrupt(
                f"refusing to append: {exc} (this entry's last signed head has "
                f"{self._head.size} blocks)"
            ) from None
        self._leaves = leaves  # a block that landed although its append seemed to fail

    def _load_leaves(self) -> list[bytes]:
        return [b.hash for b in self.blocks()]

    def check_head(self) -> None:
        """Refuse a ledger whose chain does not extend the entry's own last signed head.

        Raises ChainWentBackwards (fewer blocks than the head), ChainForked (another
        genesis, or a rewritten history) or TreeHeadInvalid (the saved head is not this
        entry's). Then signs a head for the chain as it is now (kept and given to the ledger).
        """
        with self._lock:
            saved = None if self.head_path is None else TreeHead.load(self.head_path)
            leaves = self._load_leaves()
            if saved is not None:
                saved.check_signature(self.key.public_bytes)
                chain_id = leaves[0] if leaves else saved.chain_id
                now = head_for(chain_id, leaves, saved.timestamp_ms)
                proof = (
                    merkle.consistency_proof(leaves, saved.size)
                    if saved.size <= len(leaves)
                    else []
                )
                check_extends(saved, now, proof)
            self._leaves = leaves
            if leaves:
                self._sign_head()

    def _sign_head(self) -> None:
        """Sign the head of ``self._leaves``, keep it on disk and give it to the ledger."""
        assert self._leaves
        head = head_for(self._leaves[0], self._leaves, int(time.time() * 1000)).signed(self.key)
        if self.head_path is not None:
            head.save(self.head_path)
        self._head = head
        try:
            self.ledger.put_tree_head(head)
        except LedgerError as exc:  # the head is kept here; the next block gives a newer one
            log.warning("the ledger did not take tree head %d: %s", head.size, exc)

    def _after_append(self, stored: Block) -> None:
        if self._leaves is None or len(self._leaves) != stored.height:
            self._leaves = self._load_leaves()
        else:
            self._leaves.append(stored.hash)
        if not self._leaves or self._leaves[-1] != stored.hash:
            raise LedgerCorrupt(
                f"the ledger's block {stored.height} is not the block this entry just wrote"
            )
        self._sign_head()

    def append(self, kind: str, payload: Any) -> Block:
        """Build the next block on the current tip, sign it with the entry key and append it.

        When the append raises ``LedgerUnavailable`` (timed out, connection lost) the height
        is read again: if the block landed anyway (the ledger committed it but the reply was
        lost), it is returned as appended; otherwise the error is raised. A refusal
        (``LedgerRejected``) changed nothing and is raised as it is.
        """
        with self._lock:
            prev = self.ledger.tip()
            self._check_tip(prev)
            block = build_block(BlockKind(kind), payload, prev, self.key)
            started = time.monotonic()
            try:
                stored = self.ledger.append(block)
            except LedgerUnavailable:
                landed = self._landed(block)
                if landed is None:
                    raise
                log.warning(
                    "block %d (%s) was stored although its append failed; keeping it",
                    block.height,
                    kind,
                )
                stored = landed
            self.cached_height = max(self.cached_height, stored.height)
            self._after_append(stored)
            for listener in self.appended:
                listener(stored, time.monotonic() - started)
            return stored

    def _landed(self, block: Block) -> Block | None:
        """The stored block at ``block``'s height when it is ``block`` itself, else None."""
        try:
            stored = self.ledger.get(block.height)
        except LedgerUnavailable:  # still unreachable: the append stays failed
            return None
        if stored is not None and stored.hash == block.hash:
            return stored
        return None

    def height(self) -> int:
        """Height of the tip, -1 for an empty chain."""
        tip = self.ledger.tip()
        self.cached_height = -1 if tip is None else tip.height
        return self.cached_height

    def blocks(self, start: int = 0, kind: str | None = None) -> list[Block]:
        """Every block from ``start`` (optionally one kind), paging through the ledger."""
        out: list[Block] = []
        h = start
        top = self.height()
        while h <= top:
            page = self.ledger.range(h, SCAN_PAGE)
            if not page:
                break
            out.extend(b for b in page if kind is None or str(b.kind) == kind)
            h = page[-1].height + 1
        return out

    def genesis(self) -> Block | None:
        """Block 0, or None for an empty chain."""
        return None if self.height() < 0 else self.ledger.get(0)

    def _rounds(self) -> list[RoundPayload]:
        return [
            b.payload for b in self.blocks(kind="round") if isinstance(b.payload, RoundPayload)
        ]

    def _genesis_payload(self) -> GenesisPayload | None:
        g = self.genesis()
        if g is None:
            return None
        if not isinstance(g.payload, GenesisPayload):
            raise LedgerCorrupt(f"block 0 is a {g.kind} block, not genesis")
        return g.payload

    def latest_model(self) -> ModelRef:
        """The newest global model on the chain (last round block, else genesis)."""
        rounds = self._rounds()
        if rounds:
            p = rounds[-1]
            return ModelRef(p.model_version, p.model_digest, p.round, p.algorithm)
        g = self._genesis_payload()
        if g is None:
            raise LookupError("the chain is empty")
        return ModelRef(0, g.model_digest, 0, "")

    def model_digest(self, version: int) -> str | None:
        """Digest of model ``version`` (0 = genesis), None if there is no such version."""
        if version == 0:
            g = self._genesis_payload()
            return None if g is None else g.model_digest
        for p in reversed(self._rounds()):
            if p.model_version == version:
                return p.model_digest
        return None
