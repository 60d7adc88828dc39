"""RFC 6962 / RFC 9162 Merkle tree hashes over SHA-256.

Leaf hash ``H(0x00 || leaf)``, interior node ``H(0x01 || left || right)``, the empty
tree's root is ``H("")``; a tree of n leaves splits at the largest power of two below n.
Round blocks commit to their update digests (raw 32-byte values, in the block's order)
with ``root``; ``inclusion_proof`` and ``verify_inclusion`` prove one update is in a round.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_BYTES = 32


def leaf_hash(leaf: bytes) -> bytes:
    """``SHA-256(0x00 || leaf)``."""
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _subtree_root(hashes: Sequence[bytes]) -> bytes:
    n = len(hashes)
    if n == 1:
        return hashes[0]
    k = _split(n)
    return node_hash(_subtree_root(hashes[:k]), _subtree_root(hashes[k:]))


def root(leaves: Sequence[bytes]) -> bytes:
    """Merkle tree hash (MTH) of the leaves, in order."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    return _subtree_root([leaf_hash(x) for x in leaves])


def _path(index: int, hashes: Sequence[bytes]) -> list[bytes]:
    n = len(hashes)
    if n == 1:
        return []
    k = _split(n)
    if index < k:
        return _path(index, hashes[:k]) + [_subtree_root(hashes[k:])]
    return _path(index - k, hashes[k:]) + [_subtree_root(hashes[:k])]


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Audit path (RFC 6962 section 2.1.1) for leaf ``index``, bottom sibling first."""
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf index {index} is outside a tree of {len(leaves)} leaves")
    return _path(index, [leaf_hash(x) for x in leaves])


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root_hash: bytes
) -> bool:
    """True when ``proof`` shows ``leaf`` at ``index`` of a ``size``-leaf tree with ``root_hash``.

    The algorithm of RFC 9162 section 2.1.3.2; any malformed input gives False.
    """
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    r = leaf_hash(leaf)
    for p in proof:
        if len(p) != HASH_BYTES or sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root_hash
