"""Who may write the chain: the entry named in genesis, or a key it handed authority to.

One vector per way a participant could try to rewrite the federation's history: an
admitted EN or SN writing a round, admitting a key of its own, revoking the entry; a
handover without the new key's consent, replayed at another height, to a member key.
"""

from __future__ import annotations

import hashlib

import pytest

from fedchain.shared.chain.blocks import Block, RoundPayload, build_block
from fedchain.shared.chain.errors import BlockInvalid, ProducerNotAdmitted
from fedchain.shared.chain.payloads import handover_statement
from fedchain.shared.chain.rules import ChainState, check_block
from fedchain.shared.crypto import NodeKey

DIGEST = hashlib.sha256(b"model").hexdigest()
UPDATE = hashlib.sha256(b"update").hexdigest()


def key(seed: int) -> NodeKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return NodeKey(Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32))


class Chain:
    """A chain under construction: blocks are checked by the rules and applied."""

    def __init__(self, entry: NodeKey) -> None:
        self.state = ChainState()
        self.blocks: list[Block] = []
        self.ts = 1000
        self.add(
            entry,
            "genesis",
            {
                "config": {"algorithm": "fedper"},
                "model_digest": DIGEST,
                "entry_node_id": entry.node_id,
                "entry_public_key": entry.public_hex,
            },
        )

    def make(self, producer: NodeKey, kind: str, payload: object) -> Block:
        self.ts += 1
        prev = self.blocks[-1] if self.blocks else None
        return build_block(kind, payload, prev, producer, self.ts)  # type: ignore[arg-type]

    def add(self, producer: NodeKey, kind: str, payload: object) -> Block:
        block = self.make(producer, kind, payload)
        check_block(block, self.state)
        self.state.apply(block)
        self.blocks.append(block)
        return block

    def join(self, entry: NodeKey, node: NodeKey, role: str, parent: str = "") -> Block:
        return self.add(entry, "node_joined", joined(node, role, parent))


def joined(node: NodeKey, role: str, parent: str = "") -> dict[str, str]:
    return {
        "node_id": node.node_id,
        "role": role,
        "public_key": node.public_hex,
        "parent_sn": parent,
        "address": "127.0.0.1:1",
    }


def round_payload(number: int, participants: list[NodeKey]) -> RoundPayload:
    return RoundPayload.create(number, "fedper", number, DIGEST, [])


def handover(chain: Chain, new: NodeKey, signer: NodeKey | None = None) -> dict[str, str]:
    statement = handover_statement(chain.blocks[-1].hash, new.public_hex)
    return {
        "new_node_id": new.node_id,
        "new_public_key": new.public_hex,
        "acceptance": (signer or new).sign(statement).hex(),
        "reason": "key rotation",
    }


@pytest.fixture
def fed() -> tuple[Chain, NodeKey, NodeKey, NodeKey]:
    entry, sn, en = key(1), key(2), key(3)
    chain = Chain(entry)
    chain.join(entry, sn, "SN")
    chain.join(entry, en, "EN", sn.node_id)
    return chain, entry, sn, en


def test_the_entry_writes_rounds(fed: tuple[Chain, NodeKey, NodeKey, NodeKey]) -> None:
    chain, entry, _, en = fed
    chain.add(entry, "round", round_payload(1, [en]))
    assert chain.state.last_round == 1 and chain.state.authority == entry.node_id


@pytest.mark.parametrize("attacker", ["sn", "en"])
def test_a_member_cannot_write_a_round(
    fed: tuple[Chain, NodeKey, NodeKey, NodeKey], attacker: str
) -> None:
    chain, _, sn, en = fed
    forger = sn if attacker == "sn" else en
    block = chain.make(forger, "round", round_payload(1, [en]))
    with pytest.raises(ProducerNotAdmitted, match="only by the entry"):
        check_block(block, chain.state)


def test_a_member_cannot_admit_a_key_of_its_own(
    fed: tuple[Chain, NodeKey, NodeKey, NodeKey],
) -> None:
    chain, _, sn, en = fed
    block = chain.make(en, "node_joined", joined(key(9), "SN"))
    with pytest.raises(ProducerNotAdmitted, match="admitted EN"):
        check_block(block, chain.state)


def test_nobody_can_revoke_the_entry(fed: tuple[Chain, NodeKey, NodeKey, NodeKey]) -> None:
    chain, entry, sn, _ = fed
    by_member = chain.make(sn, "node_left", {"node_id": entry.node_id, "reason": "coup"})
    with pytest.raises(ProducerNotAdmitted):
        check_block(by_member, chain.state)
    by_itself = chain.make(entry, "node_left", {"node_id": entry.node_id, "reason": "oops"})
    with pytest.raises(BlockInvalid, match="cannot revoke the entry"):
        check_block(by_itself, chain.state)


def test_an_outsider_is_refused(fed: tuple[Chain, NodeKey, NodeKey, NodeKey]) -> None:
    chain, _, _, en = fed
    block = chain.make(key(42), "round", round_payload(1, [en]))
    with pytest.raises(ProducerNotAdmitted, match="not an admitted node"):
        check_block(block, chain.state)


def test_the_entry_cannot_be_admitted_as_a_member(
    fed: tuple[Chain, NodeKey, NodeKey, NodeKey],
) -> None:
    chain, entry, _, _ = fed
    block = chain.make(entry, "node_joined", joined(entry, "EN"))
    with pytest.raises(BlockInvalid, match="entry's own key"):
        check_block(block, chain.state)


def test_handover_moves_authority(fed: tuple[Chain, NodeKey, NodeKey, NodeKey]) -> None:
    chain, entry, _, en = fed
    new = key(7)
    chain.add(entry, "authority_handover", handover(chain, new))
    assert chain.state.authority == new.node_id
    # the old key writes nothing more; the new one does
    stale = chain.make(entry, "round", round_payload(1, [en]))
    with pytest.raises(ProducerNotAdmitted):
        check_block(stale, chain.state)
    chain.add(new, "round", round_payload(1, [en]))
    # and a replay from genesis agrees
    replayed = ChainState.replay(chain.blocks)
    assert replayed.authority == new.node_id and replayed.last_round == 1


def test_handover_needs_the_new_keys_consent(fed: tuple[Chain, NodeKey, NodeKey, NodeKey]) -> None:
    chain, entry, _, _ = fed
    new = key(7)
    forged = chain.make(entry, "authority_handover", handover(chain, new, signer=key(8)))
    with pytest.raises(BlockInvalid, match="acceptance"):
        check_block(forged, chain.state)


def test_a_handover_acceptance_cannot_be_replayed_elsewhere(
    fed: tuple[Chain, NodeKey, NodeKey, NodeKey],
) -> None:
    chain, entry, _, en = fed
    new = key(7)
    accepted_earlier = handover(chain, new)  # signed over the current tip
    chain.add(entry, "round", round_payload(1, [en]))
    moved = chain.make(entry, "authority_handover", accepted_earlier)
    with pytest.raises(BlockInvalid, match="acceptance"):
        check_block(moved, chain.state)


def test_a_member_cannot_take_authority(fed: tuple[Chain, NodeKey, NodeKey, NodeKey]) -> None:
    chain, entry, sn, en = fed
    # written by the member itself: refused as a producer
    self_made = chain.make(en, "authority_handover", handover(chain, en))
    with pytest.raises(ProducerNotAdmitted):
        check_block(self_made, chain.state)
    # handed by the entry to a member key: refused, the entry keeps a key of its own
    to_member = chain.make(entry, "authority_handover", handover(chain, sn))
    with pytest.raises(BlockInvalid, match="admitted SN"):
        check_block(to_member, chain.state)
