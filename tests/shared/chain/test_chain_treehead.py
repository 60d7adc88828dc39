"""Signed tree heads: a node that kept an old head notices a shortened, rewritten or replaced chain."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from fedchain.shared.chain import merkle
from fedchain.shared.chain.treehead import (
    ChainForked,
    ChainWentBackwards,
    TreeHead,
    TreeHeadInvalid,
    check_extends,
    head_for,
)
from fedchain.shared.crypto import NodeKey

ENTRY = NodeKey.generate()


def hashes(n: int, salt: bytes = b"") -> list[bytes]:
    return [hashlib.sha256(salt + i.to_bytes(4, "big")).digest() for i in range(n)]


def head(blocks: list[bytes], ts: int = 1, key: NodeKey = ENTRY) -> TreeHead:
    return head_for(blocks[0], blocks, ts).signed(key)


def test_a_growing_chain_extends_every_older_head() -> None:
    chain = hashes(12)
    for old_size in range(1, 13):
        old = head(chain[:old_size])
        for new_size in range(old_size, 13):
            new = head(chain[:new_size], ts=2)
            check_extends(old, new, merkle.consistency_proof(chain[:new_size], old_size))


def test_a_truncated_chain_went_backwards() -> None:
    chain = hashes(10)
    old, new = head(chain), head(chain[:7], ts=2)
    with pytest.raises(ChainWentBackwards, match="7 blocks now, 10 seen before"):
        check_extends(old, new, [])


def test_a_rewritten_history_is_a_fork() -> None:
    chain = hashes(10)
    rewritten = chain[:6] + hashes(6, b"evil")[:6]  # same genesis, other blocks from height 6
    old = head(chain[:8])
    new = head(rewritten, ts=2)
    with pytest.raises(ChainForked, match="does not extend"):
        check_extends(old, new, merkle.consistency_proof(rewritten, 8))


def test_a_chain_from_another_genesis_is_refused() -> None:
    old = head(hashes(5))
    other = hashes(9, b"other")
    with pytest.raises(ChainForked, match="genesis changed"):
        check_extends(old, head(other), merkle.consistency_proof(other, 5))


def test_signature_binds_every_field() -> None:
    h = head(hashes(4))
    h.check_signature(ENTRY.public_bytes)
    for changed in (
        TreeHead(h.chain_id, h.size + 1, h.root, h.timestamp_ms, h.signer, h.signature),
        TreeHead(h.chain_id, h.size, bytes(32), h.timestamp_ms, h.signer, h.signature),
        TreeHead(bytes(32), h.size, h.root, h.timestamp_ms, h.signer, h.signature),
        TreeHead(h.chain_id, h.size, h.root, h.timestamp_ms + 1, h.signer, h.signature),
    ):
        with pytest.raises(TreeHeadInvalid, match="does not verify"):
            changed.check_signature(ENTRY.public_bytes)
    other = NodeKey.generate()
    with pytest.raises(TreeHeadInvalid, match="not by the entry"):
        head(hashes(4), key=other).check_signature(ENTRY.public_bytes)


def test_saved_head_round_trips_and_bad_files_are_clear(tmp_path: Path) -> None:
    h = head(hashes(3))
    path = tmp_path / "state" / "tree_head.json"
    assert TreeHead.load(path) is None
    h.save(path)
    assert TreeHead.load(path) == h
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(TreeHeadInvalid, match="cannot read"):
        TreeHead.load(path)
    path.write_text('{"size": -1}', encoding="utf-8")
    with pytest.raises(TreeHeadInvalid, match="missing"):
        TreeHead.load(path)
    bad = dict(h.to_json(), size=2**64)
    with pytest.raises(TreeHeadInvalid, match="size"):
        TreeHead.from_json(bad)
