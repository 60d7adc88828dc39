"""Recomputing a networked round from its inputs, with the one FL core, bit for bit.

A round of the network is two levels of the strategy's template methods:

* each SN turns the updates it used, in the order it lists them (node id order), into a
  ``Partial`` (``Strategy.partial``: float64 weighted sums and their weight) and sends the
  safetensors bytes of the sums up (``partial_bytes``);
* the entry finishes the SNs' partials, in SN node id order, against the global model the
  round trained from (``Strategy.finish``, then ``Strategy.apply``).

Under a robust rule (not decomposable) the SNs forward the updates themselves and the entry
runs the rule once over all of them, in the order the round block records
(``robust_global``).

Every step here is that same code in that same order, so the entry (checking an SN's
aggregate against the updates it handed over) and ``fedchain verify --deep`` (replaying a
round from the retained update blobs) compute exactly the bytes the network computed:
float64 addition in a fixed order is deterministic, and so is the final cast.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from fedchain.shared.fl.aggregate import Partial
from fedchain.shared.fl.robust import Aggregation
from fedchain.shared.fl.strategy import Strategy
from fedchain.shared.tensors import digest, encode


@dataclass(frozen=True)
class UsedState:
    """One update an SN used: the EN's node id, its decoded shared state, its samples."""

    node_id: str
    state: Mapping[str, torch.Tensor]
    samples: int


def sn_partial(strategy: Strategy, round_no: int, updates: Sequence[UsedState]) -> Partial:
    """An SN's partial aggregate of ``updates`` in the order given (the strategy's checks
    and float64 sums). The network's SNs list and sum their updates in node id order."""
    return strategy.partial(round_no, [(u.state, u.samples) for u in updates])


def partial_bytes(partial: Partial) -> bytes:
    """The bytes an SN sends up for ``partial``: safetensors of the float64 sums."""
    return encode(partial.sums)


def partial_digest(partial: Partial) -> str:
    """The digest of ``partial_bytes`` (what an SN's manifest names as its aggregate)."""
    return digest(partial_bytes(partial))


def global_state(
    strategy: Strategy,
    round_no: int,
    previous: Mapping[str, torch.Tensor],
    partials: Mapping[str, Partial],
) -> dict[str, torch.Tensor]:
    """The entry's step: the SNs' partials (by SN node id), finished in SN id order against
    ``previous`` (each tensor back to its dtype there) and merged into it."""
    parts = [
        Partial.like(partials[sn].sums, partials[sn].weight, previous)
        for sn in sorted(partials)
        if partials[sn].weight > 0
    ]
    return Strategy.apply(previous, strategy.finish(round_no, parts))



def robust_global(
    strategy: Strategy,
    round_no: int,
    previous: Mapping[str, torch.Tensor],
    updates: Sequence[UsedState],
) -> Aggregation:
    """The entry's step under a robust rule: the rule over every EN update of the round, in
    the order given (the block's ``aggregation_order``), against ``previous``'s shared
    state; the new model (merged into ``previous``) and the rule's decisions (positions in
    ``updates``, not yet naming nodes). Raises ``UpdateRejected`` when the rule cannot run."""
    result = strategy.aggregate_with_decisions(
        round_no, [(u.state, u.samples) for u in updates], strategy.reference(previous)
    )
    return Aggregation(Strategy.apply(previous, result.state), result.decisions)


def same_sums(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> bool:
    """True when both hold the same float64 tensors bit for bit (what equal bytes mean,
    without encoding and hashing them)."""
    if set(a) != set(b):
        return False
    for key, x in a.items():
        y = b[key]
        if x.dtype != torch.float64 or y.dtype != torch.float64 or x.shape != y.shape:
            return False
        if not torch.equal(x.contiguous().view(torch.int64), y.contiguous().view(torch.int64)):
            return False
    return True
