"""Who was in the federation when: the chain's node_joined / node_left history, replayed.

Every admission is a ``node_joined`` block and every departure (a member that missed its
heartbeats) a ``node_left`` block, so the members at any point of the chain follow from the
blocks before it. ``members_at_round(blocks, r)`` answers "who was in the federation when
round r was recorded" (the entry is a member from genesis on); ``membership_by_round``
gives every round at once. The blocks are applied, not checked: verify the chain
(``ChainState.replay`` / ``fedchain verify``) to know they hold.
"""

from __future__ import annotations

from collections.abc import Iterable

from fedchain.shared.chain.blocks import Block
from fedchain.shared.chain.payloads import RoundPayload
from fedchain.shared.chain.rules import ChainState, Member


class RoundNotOnChain(LookupError):
    """The chain holds no round block of the round asked for."""


def membership_by_round(blocks: Iterable[Block]) -> dict[int, dict[str, Member]]:
    """round number -> the members (node id -> Member) as of that round's block."""
    state = ChainState()
    out: dict[int, dict[str, Member]] = {}
    for block in blocks:
        state.apply(block)
        if isinstance(block.payload, RoundPayload):
            out[block.payload.round] = dict(state.members)
    return out


def members_at_round(blocks: Iterable[Block], round_no: int) -> dict[str, Member]:
    """The members (node id -> Member) of the federation when round ``round_no`` was recorded.

    Raises RoundNotOnChain when no block records that round.
    """
    by_round = membership_by_round(blocks)
    if round_no not in by_round:
        last = max(by_round, default=0)
        raise RoundNotOnChain(f"round {round_no} is not on the chain (the last round is {last})")
    return by_round[round_no]


def members_at_height(blocks: Iterable[Block], height: int) -> dict[str, Member]:
    """The members after the block at ``height`` (the newest block when the chain is shorter)."""
    state = ChainState()
    for block in blocks:
        if block.height > height:
            break
        state.apply(block)
    return dict(state.members)
