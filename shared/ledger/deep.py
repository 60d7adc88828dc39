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

Under a robust rule (``median``, ``krum:f``, ``clip:τ``…; not decomposable) the SNs forwarded
the updates and the entry ran the rule over all of them: steps 3-4 become one, the rule
rerun over every update the block lists (participants and set-aside ones) in the block's
``aggregation_order``. Its decisions (node, action, reason) must be the block's, the
updates it rejects exactly the set-aside ones, and its model the block's ``model_digest``.

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
    Participant,
    RoundPayload,
)
from fedchain.shared.config import ConfigError, Settings
from fedchain.shared.fl.aggregate import Partial
from fedchain.shared.fl.recompute import (
    UsedState,
    global_state,
    partial_digest,
    robust_global,
    sn_partial,
)
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
    from fedchain.shared.fl.models import build_model
    from fedchain.shared.fl.strategy import strategy_from_settings
    from fedchain.shared.net.federation import apply_fl_config

    recorded = dict(genesis.config)
    settings = apply_fl_config(base or Settings(), recorded)
    model = build_model(settings.model, settings.dataset, data_dir=settings.data_dir)
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
    digests = p.evidence_digests
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
    try:
        if strategy.decomposable:
            model = _recompute(ledger, p, previous, strategy)
        else:
            model = _recompute_robust(ledger, p, previous, strategy)
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
    prev_state = _previous_state(ledger, previous)
    reference = strategy.reference(prev_state)
    rows = {r.node_id: r for r in p.participants}
    partials: dict[str, Partial] = {}
    for m in p.manifests:
        if not m.used:
            continue
        used = [_update(ledger, rows[node_id], reference) for node_id in m.used]
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


def _previous_state(ledger: LedgerContract, previous: str) -> dict[str, torch.Tensor]:
    try:
        return decode(_blob(ledger, previous, "the model it trained from"))
    except TensorError as exc:
        raise _Mismatch(f"the model it trained from does not decode: {exc}") from None


def _update_bytes(ledger: LedgerContract, row: Participant) -> bytes:
    """The retained update blob of ``row``, checked against the digest its EN signed."""
    data = _blob(ledger, row.update_digest, f"the update of {row.node_id}")
    if digest(data) != row.update_digest:
        raise _Mismatch(f"the update of {row.node_id} does not hash to its signed digest")
    return data


def _update(
    ledger: LedgerContract, row: Participant, reference: Mapping[str, torch.Tensor]
) -> UsedState:
    """The retained update of ``row``, decoded against the model's shared part."""
    return _decoded(row, _update_bytes(ledger, row), reference)


def _decoded(
    row: Participant, data: bytes, reference: Mapping[str, torch.Tensor]
) -> UsedState:
    try:
        state = decode(data, expected=reference)
    except TensorError as exc:
        raise _Mismatch(f"the update of {row.node_id} does not hold: {exc}") from None
    return UsedState(row.node_id, state, row.samples)


def _recompute_robust(
    ledger: LedgerContract, p: RoundPayload, previous: str, strategy: Strategy
) -> str:
    """A robust round: the federation's rule over every update the entry's rule saw, in the
    block's ``aggregation_order``; its decisions must be the block's, and the set-aside
    updates exactly the ones it rejected. Returns the recomputed model digest."""
    spec = str(strategy.aggregator.spec)
    for m in p.manifests:
        if m.aggregator != spec:
            raise _Mismatch(
                f"super node {m.sn_node_id}'s manifest names aggregator {m.aggregator[:40]!r}, "
                f"genesis records {spec}",
                m.sn_node_id,
            )
    if not p.aggregation_order:
        raise _Mismatch(f"the block records no aggregation order for aggregator {spec}")
    prev_state = _previous_state(ledger, previous)
    reference = strategy.reference(prev_state)
    rows = {r.node_id: r for r in [*p.participants, *p.set_aside]}
    blobs = {n: _update_bytes(ledger, row) for n, row in rows.items()}
    for m in p.manifests:  # what an SN forwards is its used updates' bytes, one after another
        if m.used and digest(b"".join(blobs[n] for n in m.used)) != m.aggregate_digest:
            raise _Mismatch(
                f"the aggregate of super node {m.sn_node_id} ({m.aggregate_digest[:16]}…) is "
                "not the updates it lists, forwarded as they are",
                m.sn_node_id,
            )
    updates = [_decoded(rows[n], blobs[n], reference) for n in p.aggregation_order]
    try:
        result = robust_global(strategy, p.round, prev_state, updates)
    except (UpdateRejected, ValueError) as exc:
        raise _Mismatch(f"aggregator {spec} cannot run on the retained updates: {exc}") from None
    found = {(p.aggregation_order[d.index], d.action, d.reason) for d in result.decisions}
    order = set(p.aggregation_order)
    recorded = {(d.node_id, d.action, d.reason) for d in p.decisions if d.node_id in order}
    if found != recorded:
        odd = sorted(found ^ recorded)[0]
        side = "the rule decides" if odd in found else "the block records"
        raise _Mismatch(
            f"the aggregator's decisions differ from the block's: {side} {odd[0]} "
            f"{odd[1]} ({odd[2][:80]})"
        )
    rejected = {n for n, action, _ in found if action == "rejected"}
    aside = {q.node_id for q in p.set_aside}
    if rejected != aside:
        odd_node = sorted(rejected ^ aside)[0]
        raise _Mismatch(
            f"update of {odd_node} is {'set aside' if odd_node in aside else 'a participant'}, "
            f"but the rule {'keeps' if odd_node in aside else 'rejects'} it"
        )
    return digest(encode(_cpu(result.state)))


def _cpu(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in state.items()}
