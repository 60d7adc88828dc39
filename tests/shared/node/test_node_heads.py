"""The highest signed tree head an SN or EN keeps, and its check of the head each OpenRound carries."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from pathlib import Path

import grpc
import pytest

from fedchain.shared.chain import merkle
from fedchain.shared.chain.treehead import (
    ChainForked,
    ChainWentBackwards,
    TreeHead,
    TreeHeadInvalid,
    head_for,
)
from fedchain.shared.config import ConfigError
from fedchain.shared.crypto import NodeKey
from fedchain.shared.ledger.wire import head_to_proto
from fedchain.shared.net.signing import open_round_fields
from fedchain.shared.net.statements import Domain, sign
from fedchain.shared.node.entry_requests import EntryRequests, RequestRefused
from fedchain.shared.node.heads import (
    HEAD_FILE,
    MAX_PROOF_HASHES,
    ChainRefused,
    HeadKeeper,
    ProofUnavailable,
    check_new_head,
)
from fedchain.shared.node.trust import EntryTrust
from fedchain.shared.rpc import node_pb2 as pb

ENTRY = NodeKey.generate()
SN = "n-" + "1" * 16


def hashes(n: int, salt: bytes = b"") -> list[bytes]:
    return [hashlib.sha256(salt + i.to_bytes(4, "big")).digest() for i in range(n)]


CHAIN = hashes(40)
TRUST = EntryTrust(CHAIN[0], ENTRY.public_bytes)


def head(blocks: Sequence[bytes], key: NodeKey = ENTRY, ts: int = 1) -> TreeHead:
    return head_for(CHAIN[0], blocks, ts).signed(key)


# ---- the check ----
def test_the_same_head_again_holds_without_a_proof() -> None:
    check_new_head(head(CHAIN[:9]), head(CHAIN[:9], ts=2), TRUST, [])


def test_an_extension_with_a_valid_proof_holds() -> None:
    for old_size in (1, 4, 7, 16):
        check_new_head(head(CHAIN[:old_size]), head(CHAIN[:23]), TRUST,
                       merkle.consistency_proof(CHAIN[:23], old_size))


def test_a_shorter_head_went_backwards() -> None:
    with pytest.raises(ChainWentBackwards, match="6 blocks now, 9 seen before"):
        check_new_head(head(CHAIN[:9]), head(CHAIN[:6]), TRUST, [])


def test_a_head_of_the_same_size_with_another_root_is_a_fork() -> None:
    rewritten = CHAIN[:5] + hashes(4, b"evil")
    with pytest.raises(ChainForked, match="does not extend"):
        check_new_head(head(CHAIN[:9]), head(rewritten), TRUST, [])


def test_a_bad_proof_is_a_fork_and_an_oversized_one_is_refused_unread() -> None:
    proof = merkle.consistency_proof(CHAIN[:20], 7)
    tampered = [proof[0][:-1] + bytes([proof[0][-1] ^ 1]), *proof[1:]]
    for bad in (tampered, proof[:-1], [], merkle.consistency_proof(CHAIN[:20], 6)):
        with pytest.raises(ChainForked, match="does not extend"):
            check_new_head(head(CHAIN[:7]), head(CHAIN[:20]), TRUST, bad)
    with pytest.raises(TreeHeadInvalid, match="longer than 64"):
        check_new_head(head(CHAIN[:7]), head(CHAIN[:20]), TRUST, [bytes(32)] * (MAX_PROOF_HASHES + 1))
    with pytest.raises(TreeHeadInvalid, match="not 32 bytes"):
        check_new_head(head(CHAIN[:7]), head(CHAIN[:20]), TRUST, [b"short"])


def test_a_head_signed_by_another_key_or_of_another_chain_is_refused() -> None:
    with pytest.raises(TreeHeadInvalid, match="not by the entry"):
        check_new_head(head(CHAIN[:9]), head(CHAIN[:9], key=NodeKey.generate()), TRUST, [])
    other = hashes(12, b"other genesis")
    with pytest.raises(ChainForked, match="genesis changed"):
        check_new_head(None, head_for(other[0], other, 1).signed(ENTRY), TRUST, [])


# ---- the keeper: state dir, proofs from the entry ----
class Proofs:
    def __init__(self, blocks: Sequence[bytes]) -> None:
        self.blocks = list(blocks)
        self.asked: list[tuple[int, int]] = []
        self.down = False

    def __call__(self, from_size: int, to_size: int) -> list[bytes]:
        self.asked.append((from_size, to_size))
        if self.down:
            raise ProofUnavailable("the entry gave no consistency proof (UNAVAILABLE: down)")
        return merkle.consistency_proof(self.blocks[:to_size], from_size)


def test_the_highest_head_is_kept_on_disk_and_only_grows(tmp_path: Path) -> None:
    proofs = Proofs(CHAIN)
    keeper = HeadKeeper(tmp_path, proofs)
    keeper.accept(head(CHAIN[:5]), TRUST)  # the first head: nothing to hold it to
    keeper.accept(head(CHAIN[:12]), TRUST)
    keeper.accept(head(CHAIN[:12], ts=5), TRUST)  # the same size: no proof asked
    assert proofs.asked == [(5, 12)]
    assert TreeHead.load(tmp_path / HEAD_FILE) == head(CHAIN[:12])
    assert keeper.status() == {"head_size": 12, "chain_error": None}
    again = HeadKeeper(tmp_path, proofs)  # a restarted node holds the chain to what it saw
    with pytest.raises(ChainRefused, match="went backwards: 8 blocks now, 12 seen before"):
        again.accept(head(CHAIN[:8]), TRUST)
    assert again.status()["chain_error"] == "refusing the round: the chain went backwards: 8 blocks now, 12 seen before"
    assert TreeHead.load(tmp_path / HEAD_FILE) == head(CHAIN[:12])  # a refused head is not kept
    again.accept(head(CHAIN[:30]), TRUST)
    assert again.status() == {"head_size": 30, "chain_error": None}


def test_a_fork_served_with_its_own_proof_is_refused(tmp_path: Path) -> None:
    keeper = HeadKeeper(tmp_path, Proofs(CHAIN))
    keeper.accept(head(CHAIN[:10]), TRUST)
    forked = CHAIN[:6] + hashes(10, b"rolled back, grown again")
    keeper._proofs = Proofs(forked)  # the entry serves proofs from the chain it now has
    with pytest.raises(ChainRefused, match="does not extend the 10 blocks seen before"):
        keeper.accept(head(forked), TRUST)
    assert keeper.highest == head(CHAIN[:10])


def test_no_proof_to_be_had_refuses_without_blaming_the_chain(tmp_path: Path) -> None:
    proofs = Proofs(CHAIN)
    keeper = HeadKeeper(tmp_path, proofs)
    keeper.accept(head(CHAIN[:3]), TRUST)
    proofs.down = True
    with pytest.raises(ChainRefused, match=r"cannot check .* \(UNAVAILABLE"):
        keeper.accept(head(CHAIN[:9]), TRUST)
    assert keeper.status() == {"head_size": 3, "chain_error": None}


def test_a_replaced_chain_shows_in_the_status_until_the_kept_one_is_extended(tmp_path: Path) -> None:
    keeper = HeadKeeper(tmp_path, Proofs(CHAIN))
    keeper.accept(head(CHAIN[:4]), TRUST)
    reason = "refusing the entry at e:1: the entry answered with another chain than the one this node joined"
    keeper.refuse_chain(reason)
    keeper.refuse_chain(reason)  # every failed re-join again: one status line
    assert keeper.status() == {"head_size": 4, "chain_error": f"refusing the entry's chain: {reason}"}
    keeper.accept(head(CHAIN[:7]), TRUST)  # the entry is back on this node's chain
    assert keeper.status() == {"head_size": 7, "chain_error": None}


def test_an_unreadable_kept_head_stops_the_node_with_one_line(tmp_path: Path) -> None:
    (tmp_path / HEAD_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot read the tree head .* move it away"):
        HeadKeeper(tmp_path, Proofs(CHAIN))


# ---- in the OpenRound check ----
def _open(round_no: int, h: TreeHead | None, *, chain: bytes = CHAIN[0]) -> pb.OpenRoundRequest:
    req = pb.OpenRoundRequest(round=round_no, version=round_no - 1, model_digest="ab" * 32,
                              algorithm="fedper", timeout_s=30.0, sn_node_id=SN,
                              issued_ms=int(time.time() * 1000) + round_no)
    if h is not None:
        req.head.CopyFrom(head_to_proto(h))
    req.signature = sign(ENTRY, Domain.OPEN_ROUND, chain, open_round_fields(req))
    return req


def test_open_round_carries_the_head_under_the_entrys_signature(tmp_path: Path) -> None:
    keeper = HeadKeeper(tmp_path, Proofs(CHAIN))
    checks = EntryRequests(lambda: TRUST)
    first = _open(2, head(CHAIN[:6]))
    checks.open_round(first, SN, heads=keeper)
    assert keeper.status()["head_size"] == 6
    with pytest.raises(RequestRefused) as replay:  # a replay is named a replay, not a rollback
        checks.open_round(first, SN, heads=keeper)
    assert "replay" in replay.value.reason and keeper.status()["chain_error"] is None
    swapped = _open(3, head(CHAIN[:9]))
    swapped.head.CopyFrom(head_to_proto(head(CHAIN[:12])))  # another head than the one signed
    with pytest.raises(RequestRefused) as bad:
        checks.open_round(swapped, SN, heads=keeper)
    assert bad.value.code == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(RequestRefused) as none:
        checks.open_round(_open(3, None), SN, heads=keeper)
    assert none.value.code == grpc.StatusCode.PERMISSION_DENIED and "no signed tree head" in none.value.reason
    with pytest.raises(RequestRefused) as back:
        checks.open_round(_open(4, head(CHAIN[:4])), SN, heads=keeper)
    assert back.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "went backwards: 4 blocks now, 6 seen before" in back.value.reason
    checks.open_round(_open(5, head(CHAIN[:8])), SN, heads=keeper)  # a refused round supersedes nothing
    assert keeper.status() == {"head_size": 8, "chain_error": None}


def test_a_round_on_a_chain_from_another_genesis_is_named_so(tmp_path: Path) -> None:
    keeper = HeadKeeper(tmp_path, Proofs(CHAIN))
    checks = EntryRequests(lambda: TRUST)
    checks.open_round(_open(2, head(CHAIN[:6])), SN, heads=keeper)
    other = hashes(9, b"re-signed from a new genesis")
    req = _open(3, head_for(other[0], other, 1).signed(ENTRY), chain=other[0])
    with pytest.raises(RequestRefused) as info:
        checks.open_round(req, SN, heads=keeper)
    assert "genesis changed" in info.value.reason and "replaced" in info.value.reason
    assert keeper.status()["chain_error"] is not None
