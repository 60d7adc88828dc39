"""Signed tree heads: the entry's signed statement of how long the chain is and what it holds.

The ledger keeps an RFC 6962 Merkle tree whose leaves are the block hashes in height
order. After each append the entry signs a ``TreeHead`` (chain id, size, root, time). A
node that keeps the highest head it has seen checks every newer one with a consistency
proof (``shared.chain.merkle.verify_consistency``): a chain that lost blocks, or was
replaced by another history, no longer extends the old head, and ``check_extends`` says
which of the two happened. The chain id is the genesis block's hash, so a head of one
federation never passes for another's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedchain.shared.chain import merkle
from fedchain.shared.chain.encoding import CanonicalWriter
from fedchain.shared.chain.errors import ChainError
from fedchain.shared.crypto import SIGNATURE_BYTES, NodeKey, node_id_for, verify_signature
from fedchain.shared.digests import hex_bytes

TREE_HEAD_DOMAIN = "fedchain/tree-head/v1"
MAX_TREE_SIZE = 2**63 - 1


class TreeHeadInvalid(ChainError):
    """A tree head that is malformed or whose signature does not verify."""


class ChainWentBackwards(ChainError):
    """A newer tree head is smaller than one already seen: blocks were removed."""


class ChainForked(ChainError):
    """A tree head does not extend one already seen: the history was rewritten or replaced."""


def _hex(value: Any, what: str, size: int) -> bytes:
    return hex_bytes(value, what, size, TreeHeadInvalid)


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TREE_SIZE:
        raise TreeHeadInvalid(f"{what} must be an integer between 0 and 2^63-1")
    return value


@dataclass(frozen=True)
class TreeHead:
    """The chain of ``chain_id`` had ``size`` blocks whose hashes have Merkle root ``root``."""

    chain_id: bytes
    size: int
    root: bytes
    timestamp_ms: int
    signer: str = ""
    signature: bytes = b""

    def statement(self) -> bytes:
        """The canonical bytes the entry signs (domain tag first; never JSON)."""
        w = CanonicalWriter()
        w.text(TREE_HEAD_DOMAIN)
        w.raw(self.chain_id)
        w.u64(self.size)
        w.raw(self.root)
        w.u64(self.timestamp_ms)
        return w.getvalue()

    def signed(self, key: NodeKey) -> TreeHead:
        """This head signed by ``key`` (the entry)."""
        return TreeHead(
            self.chain_id,
            self.size,
            self.root,
            self.timestamp_ms,
            key.node_id,
            key.sign(self.statement()),
        )

    def check_signature(self, public_key: bytes) -> None:
        """Raise TreeHeadInvalid unless the head is signed by ``public_key``."""
        if self.signer != node_id_for(public_key):
            raise TreeHeadInvalid(
                f"tree head is signed by {self.signer or 'nobody'}, not by the entry "
                f"{node_id_for(public_key)}"
            )
        if not verify_signature(public_key, self.signature, self.statement()):
            raise TreeHeadInvalid("tree head signature does not verify with the entry's key")

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id.hex(),
            "size": self.size,
            "root": self.root.hex(),
            "timestamp_ms": self.timestamp_ms,
            "signer": self.signer,
            "signature": self.signature.hex(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TreeHead:
        """Parse ``to_json`` output; TreeHeadInvalid with a one-line reason on any problem."""
        if not isinstance(data, Mapping):
            raise TreeHeadInvalid("a tree head must be a JSON object")
        missing = [
            k
            for k in ("chain_id", "size", "root", "timestamp_ms", "signer", "signature")
            if k not in data
        ]
        if missing:
            raise TreeHeadInvalid(f"tree head is missing {', '.join(missing)}")
        signer = data["signer"]
        if not isinstance(signer, str) or len(signer) > 64:
            raise TreeHeadInvalid("tree head signer must be a node id")
        signature = data["signature"]
        return cls(
            chain_id=_hex(data["chain_id"], "tree head chain_id", merkle.HASH_BYTES),
            size=_count(data["size"], "tree head size"),
            root=_hex(data["root"], "tree head root", merkle.HASH_BYTES),
            timestamp_ms=_count(data["timestamp_ms"], "tree head timestamp_ms"),
            signer=signer,
            signature=b""
            if signature == ""
            else _hex(signature, "tree head signature", SIGNATURE_BYTES),
        )

    def save(self, path: Path) -> None:
        """Write the head as JSON, atomically (what a node keeps in its state dir)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), sort_keys=True), encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> TreeHead | None:
        """The head saved at ``path``; None if there is none; TreeHeadInvalid if unreadable."""
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TreeHeadInvalid(f"cannot read the tree head in {path}: {exc}") from None
        return cls.from_json(data)


def head_for(chain_id: bytes, block_hashes: Sequence[bytes], timestamp_ms: int) -> TreeHead:
    """The (unsigned) head of a chain whose blocks have ``block_hashes`` in height order."""
    return TreeHead(chain_id, len(block_hashes), merkle.root(block_hashes), timestamp_ms)


def check_extends(old: TreeHead, new: TreeHead, proof: Sequence[bytes]) -> None:
    """Raise unless ``new`` extends ``old`` (same chain, not shorter, consistent prefix).

    ``proof`` is the consistency proof from ``old.size`` to ``new.size``. Raises
    ChainForked (another chain, or a rewritten history) or ChainWentBackwards (blocks
    removed). Both heads' signatures are the caller's to check.
    """
    if new.chain_id != old.chain_id:
        raise ChainForked(
            f"the chain's genesis changed: {new.chain_id.hex()[:16]}… is not the chain "
            f"{old.chain_id.hex()[:16]}… seen before"
        )
    if new.size < old.size:
        raise ChainWentBackwards(
            f"the chain went backwards: {new.size} blocks now, {old.size} seen before"
        )
    if not merkle.verify_consistency(old.size, new.size, old.root, new.root, proof):
        raise ChainForked(
            f"the chain of {new.size} blocks does not extend the {old.size} blocks seen before "
            "(its history was rewritten)"
        )
