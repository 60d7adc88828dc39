"""RFC 6962 / RFC 9162 Merkle tree hashes over SHA-256.

Leaf hash ``H(0x00 || leaf)``, interior node ``H(0x01 || left || right)``, the empty
tree's root is ``H("")``; a tree of n leaves splits at the largest power of two below n.
Round blocks commit to their update digests (raw 32-byte values, in the block's order)
with ``root``; ``inclusion_proof`` and ``verify_inclusion`` prove one update is in a round.
The ledger keeps the same tree over its block hashes: ``consistency_proof`` and
``verify_consistency`` prove that a tree of m leaves is a prefix of a tree of n leaves, so
a node holding an older signed tree head can check that the chain only grew.
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


def _subproof(m: int, hashes: Sequence[bytes], complete: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of RFC 6962 section 2.1.2, over leaf hashes."""
    n = len(hashes)
    if m == n:
        return [] if complete else [_subtree_root(hashes)]
    k = _split(n)
    if m <= k:
        return _subproof(m, hashes[:k], complete) + [_subtree_root(hashes[k:])]
    return _subproof(m - k, hashes[k:], False) + [_subtree_root(hashes[:k])]


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """Proof (RFC 6962 section 2.1.2) that the first ``old_size`` leaves form the older tree.

    Empty when ``old_size`` is 0 or equals the number of leaves (nothing to prove).
    """
    n = len(leaves)
    if not 0 <= old_size <= n:
        raise IndexError(f"old size {old_size} is outside 0..{n}")
    if old_size in (0, n):
        return []
    return _subproof(old_size, [leaf_hash(x) for x in leaves], True)


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """True when ``proof`` shows the ``old_size`` tree with ``old_root`` is a prefix of the
    ``new_size`` tree with ``new_root``.

    The algorithm of RFC 9162 section 2.1.4.2; any malformed input gives False.
    """
    if not 0 <= old_size <= new_size or any(len(p) != HASH_BYTES for p in proof):
        return False
    if old_size == 0:
        return not proof  # the empty tree is a prefix of every tree
    if old_size == new_size:
        return not proof and old_root == new_root
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, old_root)
    if not path:
        return False
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root
