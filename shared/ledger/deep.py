"""``fedchain verify --deep``: recompute every round from the retained updates, bit for bit.

For each round block, from the blocks and blobs a ledger serves (embedded store or gRPC
client, never its verdict):

1. the model the round trained from is the model of the block that made version
   ``model_version - 1`` (genesis is version 0), read from the blob store;
2. every participant's update blob is read and checked against the digest the EN signed
   (an altered blob on disk is a failure at that round's height);
3. each SN's aggregate is recomputed from its participants, in the order its manifest
   lists them, with the one FL core (``fedchain.shared.fl.recompute``) and compared with
   the aggregate digest the SN signed: a mismatch names that SN;
4. the global model is finished from the recomputed partials (SN id order) over the
   previous model and its digest compared with the block's ``model_digest``.

A round whose update blobs were not retained (``FEDCHAIN_KEEP_UPDATES``) is reported as
"not retained": not a failure unless ``require_all``. The federation's model and
strategy come from genesis's recorded config.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import torch

from fedchain.shared.chain.blocks import Block
from fedchain.shared.chain.payloads import (
    CheckpointPayload,
    GenesisPayload,
    RoundPayload,
)
from fedchain.shared.config import ConfigError, Settings
from fedchain.shared.fl.aggregate import Partial
from fedchain.shared.fl.recompute import UsedState, global_state, partial_digest, sn_partial
from fedchain.shared.fl.strategy import Strategy, UpdateRejected
from fedchain.shared.ledger.contract import MAX_RANGE, LedgerContract
from fedchain.shared.ledger.errors import LedgerCorrupt, NotFound
from fedchain.shared.tensors import TensorError, decode, digest, encode

StrategyFor = Callable[[str], Strategy]
"""The federation's strategy for an algorithm name, bound to its model."""

OK, NOT_RETAINED, MISMATCH = "ok", "not retained", "mismatch"


@dataclass(frozen=True)
class RoundCheck:
    """What ``--deep`` found for one round block."""

    height: int
    round: int
    status: str
    detail: str = ""
    sn_node_id: str = ""
    """The SN whose aggregate is wrong, when that is what failed."""


@dataclass
class DeepReport:
    """Every round's check; ``ok`` unless a round does not recompute (or is not retained
    when ``require_all``)."""

    checks: list[RoundCheck] = field(default_factory=list)
    require_all: bool = False

    def failures(self) -> list[RoundCheck]:
        bad = {MISMATCH, NOT_RETAINED} if self.require_all else {MISMATCH}
        return [c for c in self.checks if c.status in bad]

    @property
    def ok(self) -> bool:
        return not self.failures()

    @property
    def first_bad(self) -> RoundCheck | None:
        failures = self.failures()
        return failures[0] if failures else None

    def summary(self) -> str:
        counts = {s: sum(c.status == s for c in self.checks) for s in (OK, NOT_RETAINED, MISMATCH)}
        head = (
            f"deep: {counts[OK]} rounds recomputed bit for bit, {counts[NOT_RETAINED]} not "
            f"retained, {counts[MISMATCH]} do not match"
        )
        bad = self.first_bad
        if bad is None:
            return head
        return f"{head}\ndeep: FAILED at height {bad.height} (round {bad.round}): {bad.detail}"


def strategies_from_genesis(genesis: GenesisPayload, base: Settings | None = None) -> StrategyFor:
    """The strategy of the federation genesis records (model, dataset, FedPer split, rule)."""
    import json

    from fedchain.shared.fl.models import build_model
    from fedchain.shared.fl.strategy import strategy_from_settings
    from fedchain.shared.net.federation import apply_fl_config

    recorded = {k: json.loads(v) for k, v in genesis.config.items()}
    settings = apply_fl_config(base or Settings(), recorded)
    model = build_model(settings.model, settings.dataset)
    cache: dict[str, Strategy] = {}

    def strategy_for(algorithm: str) -> Strategy:
        if algorithm not in cache:
            strategy = strategy_from_settings(settings, algorithm)
            strategy.bind(model)
            cache[algorithm] = strategy
        return cache[algorithm]

    return strategy_for


def _blocks(ledger: LedgerContract) -> Iterator[Block]:
    start = 0
    while True:
        batch = ledger.range(start, MAX_RANGE)
        if not batch:
            return
        yield from batch
        start = batch[-1].height + 1


class _Mismatch(Exception):
    def __init__(self, detail: str, sn: str = "") -> None:
        super().__init__(detail)
        self.detail, self.sn = detail, sn


def verify_deep(
    ledger: LedgerContract,
    *,
    require_all: bool = False,
    strategy_for: StrategyFor | None = None,
    progress: Callable[[RoundCheck], None] | None = None,
) -> DeepReport:
    """Recompute every round block of ``ledger`` (see the module doc)."""
    report = DeepReport(require_all=require_all)
    versions: dict[int, str] = {}
    for block in _blocks(ledger):
        p = block.payload
        if isinstance(p, GenesisPayload):
            versions[0] = p.model_digest
            if strategy_for is None:
                try:
                    strategy_for = strategies_from_genesis(p)
                except ConfigError as exc:
                    raise ConfigError(f"genesis records a config --deep cannot use: {exc}") from None
        elif isinstance(p, CheckpointPayload):
            versions.setdefault(p.model_version, p.model_digest)
        elif isinstance(p, RoundPayload):
            assert strategy_for is not None, "a round block before genesis"
            check = _check_round(ledger, block.height, p, versions, strategy_for)
            versions[p.model_version] = p.model_digest
            report.checks.append(check)
            if progress is not None:
                progress(check)
    return report


def _check_round(
    ledger: LedgerContract,
    height: int,
    p: RoundPayload,
    versions: Mapping[int, str],
    strategy_for: StrategyFor,
) -> RoundCheck:
    digests = p.update_digests
    present = [d for d in digests if ledger.has_blob(d)]
    if len(present) < len(digests):
        return RoundCheck(
            height, p.round, NOT_RETAINED,
            f"{len(present)} of {len(digests)} updates are in the blob store",
        )
    previous = versions.get(p.model_version - 1)
    if previous is None:
        return RoundCheck(
            height, p.round, NOT_RETAINED,
            f"no block names model version {p.model_version - 1}, the one it trained from",
        )
    strategy = strategy_for(p.algorithm)
    if not strategy.decomposable:
        return RoundCheck(
            height, p.round, NOT_RETAINED,
            f"aggregator {strategy.aggregator.spec} is not recomputed by --deep",
        )
    try:
        model = _recompute(ledger, p, previous, strategy)
    except _Mismatch as bad:
        return RoundCheck(height, p.round, MISMATCH, bad.detail, bad.sn)
    if model != p.model_digest:
        return RoundCheck(
            height, p.round, MISMATCH,
            f"the model digest {p.model_digest[:16]}… is not the recomputed average of the "
            f"retained updates ({model[:16]}…)",
        )
    return RoundCheck(height, p.round, OK)


def _blob(ledger: LedgerContract, d: str, what: str) -> bytes:
    try:
        return ledger.get_blob(d)
    except LedgerCorrupt:
        raise _Mismatch(f"{what} {d[:16]}… is altered in the blob store") from None
    except NotFound:
        raise _Mismatch(f"{what} {d[:16]}… is missing from the blob store") from None


def _recompute(
    ledger: LedgerContract, p: RoundPayload, previous: str, strategy: Strategy
) -> str:
    try:
        prev_state = decode(_blob(ledger, previous, "the model it trained from"))
    except TensorError as exc:
        raise _Mismatch(f"the model it trained from does not decode: {exc}") from None
    reference = strategy.reference(prev_state)
    rows = {r.node_id: r for r in p.participants}
    partials: dict[str, Partial] = {}
    for m in p.manifests:
        if not m.used:
            continue
        used: list[UsedState] = []
        for node_id in m.used:
            row = rows[node_id]
            data = _blob(ledger, row.update_digest, f"the update of {node_id}")
            if digest(data) != row.update_digest:
                raise _Mismatch(f"the update of {node_id} does not hash to its signed digest")
            try:
                state = decode(data, expected=reference)
            except TensorError as exc:
                raise _Mismatch(f"the update of {node_id} does not hold: {exc}") from None
            used.append(UsedState(node_id, state, row.samples))
        try:
            partial = sn_partial(strategy, p.round, used)
        except (UpdateRejected, ValueError) as exc:
            raise _Mismatch(f"the updates of {m.sn_node_id} cannot be aggregated: {exc}") from None
        found = partial_digest(partial)
        if found != m.aggregate_digest:
            raise _Mismatch(
                f"the aggregate of super node {m.sn_node_id} ({m.aggregate_digest[:16]}…) is "
                f"not the weighted sum of the updates it lists (recomputed {found[:16]}…)",
                m.sn_node_id,
            )
        partials[m.sn_node_id] = partial
    if not partials:
        raise _Mismatch("the round lists no aggregate to recompute")
    try:
        new_state = global_state(strategy, p.round, prev_state, partials)
    except (UpdateRejected, ValueError) as exc:
        raise _Mismatch(f"the aggregates cannot be finished: {exc}") from None
    return digest(encode(_cpu(new_state)))


def _cpu(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in state.items()}
