"""Node lifecycle on the chain: node_left and node_joined again, nonsense refused, and who
was in the federation at every round."""

from __future__ import annotations

import pytest

from fedchain.shared.chain.errors import BlockInvalid
from fedchain.shared.chain.membership import (
    RoundNotOnChain,
    members_at_height,
    members_at_round,
    membership_by_round,
)
from fedchain.shared.chain.rules import ChainState
from fedchain.shared.crypto import NodeKey
from tests.shared.chain.test_chain_authority import Chain, joined, key, round_payload

TIMEOUT = {"reason": "heartbeat timeout"}


@pytest.fixture
def fed() -> tuple[Chain, NodeKey, NodeKey, NodeKey]:
    entry, sn, en = key(1), key(2), key(3)
    chain = Chain(entry)
    chain.join(entry, sn, "SN")
    chain.join(entry, en, "EN", sn.node_id)
    return chain, entry, sn, en


def test_a_node_leaves_and_joins_again_with_the_same_key(
    fed: tuple[Chain, NodeKey, NodeKey, NodeKey],
) -> None:
    chain, entry, sn, en = fed
    chain.add(entry, "node_left", {"node_id": en.node_id, **TIMEOUT})
    assert en.node_id not in chain.state.members
    chain.join(entry, en, "EN", sn.node_id)
    assert chain.state.members[en.node_id].admitted_at == chain.state.height
    assert en.node_id not in chain.state.revoked
    ChainState.replay(chain.blocks)  # the whole history verifies


def test_leaving_twice_is_refused(fed: tuple[Chain, NodeKey, NodeKey, NodeKey]) -> None:
    chain, entry, _, en = fed
    left = chain.add(entry, "node_left", {"node_id": en.node_id, **TIMEOUT})
    with pytest.raises(BlockInvalid, match=f"left already at height {left.height}"):
        chain.add(entry, "node_left", {"node_id": en.node_id, **TIMEOUT})


def test_joining_while_joined_is_refused(fed: tuple[Chain, NodeKey, NodeKey, NodeKey]) -> None:
    chain, entry, sn, en = fed
    with pytest.raises(BlockInvalid, match="already a member since height 2"):
        chain.join(entry, en, "EN", sn.node_id)
    with pytest.raises(BlockInvalid, match="already a member since height 1"):
        chain.join(entry, sn, "SN")
    with pytest.raises(BlockInvalid, match="already a member"):
        chain.add(entry, "node_joined", joined(en, "SN"))  # nor as the other role


def test_an_en_moving_to_another_sn_is_recorded(
    fed: tuple[Chain, NodeKey, NodeKey, NodeKey],
) -> None:
    chain, entry, _, en = fed
    other = key(4)
    chain.join(entry, other, "SN")
    chain.join(entry, en, "EN", other.node_id)
    assert chain.state.members[en.node_id].parent_sn == other.node_id


def test_members_at_every_round(fed: tuple[Chain, NodeKey, NodeKey, NodeKey]) -> None:
    chain, entry, sn, en = fed
    replacement = key(5)
    chain.add(entry, "round", round_payload(1, [en]))
    chain.add(entry, "node_left", {"node_id": en.node_id, **TIMEOUT})
    chain.join(entry, replacement, "EN", sn.node_id)
    chain.add(entry, "round", round_payload(2, [replacement]))
    chain.join(entry, en, "EN", sn.node_id)
    chain.add(entry, "round", round_payload(3, [en, replacement]))

    ids = {r: set(m) for r, m in membership_by_round(chain.blocks).items()}
    assert ids == {
        1: {entry.node_id, sn.node_id, en.node_id},
        2: {entry.node_id, sn.node_id, replacement.node_id},
        3: {entry.node_id, sn.node_id, en.node_id, replacement.node_id},
    }
    assert set(members_at_round(chain.blocks, 2)) == ids[2]
    assert en.node_id not in members_at_height(chain.blocks, 5)  # right after node_left
    with pytest.raises(RoundNotOnChain, match="round 4 is not on the chain"):
        members_at_round(chain.blocks, 4)
