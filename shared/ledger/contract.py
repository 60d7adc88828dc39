"""The ledger contract: what every ledger backend offers, typed, with the errors it may raise.

Two implementations: the embedded store (``fedchain.services.ledger.store.Ledger``, SQLite
or MySQL plus a blob folder) and the gRPC client of a ledger service
(``fedchain.shared.ledger.client.LedgerClient``). Code that uses a ledger is written
against ``LedgerContract`` and works with either; one test suite
(``tests/services/ledger/ledger_contract_suite.py``) holds every backend to it.

Errors (all ``fedchain.shared.ledger.errors.LedgerError``; nothing else escapes a method,
database, gRPC and OS errors are translated):

- ``LedgerUnavailable``: the ledger, its database or its disk cannot be reached or failed
  (down, closed, timed out). An ``append`` that raised it may or may not have landed: read
  the height back to know.
- ``LedgerRejected`` and its subclasses: the request was refused and nothing changed.
  ``OutOfSequence`` (the block does not extend the tip), ``HeightConflict`` (another block
  holds that height), ``InvalidBlock`` (bad hash, signature, payload, round number),
  ``ProducerRejected``, ``MissingBlob``, ``InvalidBlob`` (not safetensors, digest not as
  announced, malformed digest), ``TooLarge`` (``QuotaExceeded``: unreferenced blobs fill
  the upload quota), ``UploadRefused`` (a remote upload not signed by the entry),
  ``InvalidTreeHead``.
- ``NotFound`` (a ``LedgerRejected``): no such blob, no such block for a proof, an update
  that is not in the round block.
- ``LedgerCorrupt``: stored data no longer matches its digest or cannot be read back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from fedchain.shared.chain.blocks import Block
from fedchain.shared.chain.treehead import TreeHead
from fedchain.shared.ledger.results import InclusionProof, VerifyReport
from fedchain.shared.limits import MAX_HEIGHT

__all__ = ["MAX_HEIGHT", "MAX_RANGE", "LedgerContract", "Progress"]

MAX_RANGE = 1000
"""The most blocks one ``range`` call returns."""

Progress = Callable[[int], None]
"""Called by ``verify`` with the number of blocks checked so far."""


@runtime_checkable
class LedgerContract(Protocol):
    """A hash-chained block store with a content-addressed blob store beside it."""

    def tip(self) -> Block | None:
        """The last block, or None when the chain is empty."""
        ...

    def height(self) -> int:
        """Height of the tip (-1 when the chain is empty)."""
        ...

    def get(self, height: int) -> Block | None:
        """The block at ``height``, or None (also for a negative or too large height)."""
        ...

    def range(self, start: int, limit: int) -> list[Block]:
        """Up to ``limit`` (at most ``MAX_RANGE``) consecutive blocks from height ``start``.

        A negative ``start`` reads from 0; ``limit`` <= 0 returns no block.
        """
        ...

    def append(self, block: Block) -> Block:
        """Append ``block`` after the tip and return the stored block.

        Idempotent: the same block again returns the stored one. A refusal raises a
        ``LedgerRejected`` subclass and leaves the chain unchanged.
        """
        ...

    def put_blob(self, data: bytes, expected_digest: str | None = None) -> str:
        """Store a safetensors blob durably; return its hex SHA-256 (idempotent).

        ``expected_digest``: refuse (``InvalidBlob``) content with another digest.
        ``TooLarge`` over the backend's blob bound.
        """
        ...

    def get_blob(self, digest: str, max_bytes: int | None = None) -> bytes:
        """The blob's bytes, re-checked against ``digest``.

        ``NotFound`` when absent, ``LedgerCorrupt`` when the stored bytes differ,
        ``TooLarge`` when longer than ``max_bytes``, ``InvalidBlob`` for a malformed digest.
        """
        ...

    def has_blob(self, digest: str) -> bool:
        """True when a blob with ``digest`` is stored (``InvalidBlob`` if malformed)."""
        ...

    def verify(self, progress: Progress | None = None) -> VerifyReport:
        """Recompute every hash, link, signature, Merkle root and blob digest of the chain.

        A damaged chain is a report with ``ok=False`` (not an error). ``progress`` is
        called with the blocks checked so far (by a remote ledger once, at the end).
        """
        ...

    def inclusion_proof(self, height: int, update_digest: str) -> InclusionProof:
        """RFC 6962 proof that ``update_digest`` is in round block ``height``.

        ``NotFound`` when there is no such block or the update is not in it;
        ``InvalidBlock`` when the block is not a round block.
        """
        ...

    def put_tree_head(self, head: TreeHead) -> TreeHead:
        """Store the entry's signed head of the block-hash tree; return the stored head.

        ``InvalidTreeHead`` unless the head is signed by the entry (the chain's current
        authority), its chain id is the genesis hash, it names no more blocks than the
        chain holds and its root is the root of that many blocks, and it is not smaller
        than the head already stored. Storing the same size again is idempotent.
        """
        ...

    def tree_head(self) -> TreeHead | None:
        """The latest signed tree head stored (None before the entry gave one)."""
        ...

    def consistency(self, old_size: int, new_size: int) -> list[bytes]:
        """RFC 6962 proof that the first ``old_size`` block hashes are a prefix of the first
        ``new_size`` (leaves: block hashes in height order).

        ``InvalidTreeHead`` when ``old_size > new_size`` or a size is negative, ``NotFound``
        when ``new_size`` exceeds the chain's length.
        """
        ...

    def close(self) -> None:
        """Release connections; afterwards every method raises ``LedgerUnavailable``."""
        ...
