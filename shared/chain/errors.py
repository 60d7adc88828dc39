"""Why a block is refused: raised by block parsing and by the chain rules in ``rules``.

Every message is one line naming what is wrong. The ledger service turns these into
its own refusal errors (and gRPC/HTTP statuses); verification reports them per height.
"""

from __future__ import annotations


class ChainError(ValueError):
    """A block that may not be on the chain (base class)."""


class BlockInvalid(ChainError):
    """Malformed block: bad fields, payload, hash or signature."""


class ProducerNotAdmitted(ChainError):
    """The producer's key is not (or no longer) admitted on the chain."""


class NotNextBlock(ChainError):
    """The block does not extend the current tip (wrong height or previous hash)."""


class BlobMissing(ChainError):
    """A digest the block names has no stored blob (or the stored blob is altered)."""
