"""Which EN update blobs the ledger keeps: ``FEDCHAIN_KEEP_UPDATES=all|none|last:N``.

The entry uploads the update bytes of every participant of a round (checked against the
digest the EN signed) before it appends the round block, unless the policy is ``none``;
``fedchain verify --deep`` recomputes a round from them. ``last:N`` keeps the updates of
the N most recent round blocks: ``expired_updates`` names the update digests of older
rounds, which the ledger removes after each round block (``fedchain ledger`` service and
the embedded store) and ``fedchain ledger gc`` removes too. A digest that is the model of
any block, or an update of a retained round, is never expired: every model a block names
stays, so the retained rounds (and ``fedchain verify``) keep what they need.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from fedchain.shared.chain.blocks import Block
from fedchain.shared.chain.payloads import RoundPayload
from fedchain.shared.chain.rules import model_digests

MAX_KEEP_ROUNDS = 1_000_000


class KeepUpdatesError(ValueError):
    """A keep-updates value that is not ``all``, ``none`` or ``last:N`` (says which)."""


@dataclass(frozen=True)
class KeepUpdates:
    """The retention policy: ``rounds`` None keeps every round's updates, 0 none."""

    rounds: int | None

    @property
    def keeps_any(self) -> bool:
        """True when update bytes are uploaded at all (not ``none``)."""
        return self.rounds is None or self.rounds > 0

    def __str__(self) -> str:
        if self.rounds is None:
            return "all"
        return "none" if self.rounds == 0 else f"last:{self.rounds}"


KEEP_ALL = KeepUpdates(None)


@runtime_checkable
class PrunesUpdates(Protocol):
    """A ledger that removes expired update blobs itself (the embedded store; a ledger
    service does it after each round block it stores, so its client does not offer this)."""

    def prune_updates(self, policy: KeepUpdates) -> list[str]:
        """Delete the update blobs ``policy`` no longer keeps; return their digests."""
        ...


def parse_keep_updates(text: str) -> KeepUpdates:
    """``all``, ``none`` or ``last:N`` (N a whole number from 1) -> the policy."""
    value = str(text).strip().lower()
    if value == "all":
        return KEEP_ALL
    if value == "none":
        return KeepUpdates(0)
    head, sep, count = value.partition(":")
    if head == "last" and sep:
        if not count.isdigit():
            raise KeepUpdatesError(
                f"keep_updates last:N needs a whole number of rounds, got {text!r}"
            )
        n = int(count)
        if not 1 <= n <= MAX_KEEP_ROUNDS:
            raise KeepUpdatesError(
                f"keep_updates last:N keeps 1 to {MAX_KEEP_ROUNDS} rounds (got {n}; "
                "use none to keep no updates)"
            )
        return KeepUpdates(n)
    raise KeepUpdatesError(
        f"keep_updates must be all, none or last:N (N rounds), got {text!r}"
    )


def expired_updates(blocks: Iterable[Block], policy: KeepUpdates) -> set[str]:
    """Update digests of round blocks older than the policy keeps, that nothing still needs.

    Needed: every model digest of any block, and every update digest of a retained round.
    """
    models: set[str] = set()
    rounds: list[list[str]] = []
    for block in blocks:
        models.update(model_digests(block))
        if isinstance(block.payload, RoundPayload):
            rounds.append(block.payload.evidence_digests)
    if policy.rounds is None:
        return set()
    cut = max(0, len(rounds) - policy.rounds)
    old = {d for digests in rounds[:cut] for d in digests}
    kept = {d for digests in rounds[cut:] for d in digests}
    return old - kept - models
