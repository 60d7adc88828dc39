"""One round: select the participants, open it on their SNs, collect, aggregate, append.

``RoundRunner.run`` either appends the round block (blob first) and makes the new model
current, or raises ``RoundFailed`` with nothing appended.

With the plain mean the entry finishes the SNs' partial sums; with any other aggregator it
runs the rule over every EN update the SNs forwarded (``aggregate_global``), and each
update the rule rejected, clipped or down-weighted is listed in the block with its EN and
the reason (a rejected one is no participant of the round).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import grpc
import torch

from fedchain.services.sn.chain import ModelRef
from fedchain.services.sn.collector import Accepted, RoundCollector
from fedchain.services.sn.entry.authority import EntryAuthority
from fedchain.services.sn.entry.errors import RoundFailed
from fedchain.services.sn.entry.evaluation import Evaluation
from fedchain.services.sn.entry.intake import AggregateIntake, ForwardedUpdate
from fedchain.services.sn.entry.model import GlobalModel
from fedchain.services.sn.entry.ports import ChainWriter, Clock, OwnSuperNode, PeerDirectory
from fedchain.services.sn.model_ops import ModelTemplate, merge, select_participants
from fedchain.services.sn.registry import Member, Registry
from fedchain.shared.chain.evidence import participant_record
from fedchain.shared.chain.payloads import Decision, Participant, RoundPayload, SnManifest
from fedchain.shared.config import Settings
from fedchain.shared.fl.robust import Decision as RuleDecision
from fedchain.shared.fl.strategy import UpdateRejected
from fedchain.shared.ledger.errors import LedgerError
from fedchain.shared.ledger.wire import head_to_proto
from fedchain.shared.rpc import node_pb2 as pb
from fedchain.shared.tensors import digest, encode

log = logging.getLogger("fedchain.entry")

COLLECT_GRACE_S = 15.0
"""Seconds the entry waits for aggregates beyond ``round_timeout``."""
OPEN_TIMEOUT_S = 30.0
EDGE_POLL_S = 0.2


@dataclass(frozen=True)
class GlobalAggregate:
    """The new global model, the aggregator's decisions (each naming its EN) and, under a
    robust rule, the EN ids in the order the rule saw their updates (for the block)."""

    state: dict[str, torch.Tensor]
    decisions: tuple[RuleDecision, ...] = ()
    order: tuple[str, ...] = ()


class RoundRunner:
    """Runs one round from the current global model."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        chain: ChainWriter,
        peers: PeerDirectory,
        own_sn: OwnSuperNode,
        model: GlobalModel,
        intake: AggregateIntake,
        evaluation: Evaluation,
        *,
        authority: EntryAuthority,
        stop: threading.Event,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.chain = chain
        self.peers = peers
        self.own_sn = own_sn
        self.model = model
        self.intake = intake
        self.evaluation = evaluation
        self.authority = authority
        self.template = ModelTemplate(settings)
        self.stop = stop
        self.clock = clock or Clock()
        self.in_flight: frozenset[str] = frozenset()
        """Node ids of the ENs and SNs of the round now running (empty between rounds)."""
        self.started_at: float | None = None
        """Wall time the running (or last) round started."""
        self.on_decisions: Callable[[list[tuple[str, str]]], None] | None = None
        """Called with (EN id, action) of each aggregator decision of a round on the chain."""

    # ---- the steps ----
    def wait_for_edges(self) -> list[Member]:
        """Live ENs, waiting (bounded) for all registered ENs; after a short settle time a quorum will do."""
        total = len(self.registry.members("EN"))
        need = max(1, math.ceil(self.settings.quorum * total))
        interval = self.settings.heartbeat_interval
        now = self.clock.monotonic()
        settle = now + 2 * interval  # restarted SNs report their ENs within a beat
        deadline = now + self.settings.heartbeat_timeout + 2 * interval
        while True:
            alive = self.registry.alive_edges()
            now = self.clock.monotonic()
            if len(alive) >= total or (len(alive) >= need and now >= settle):
                return alive
            if now >= deadline or self.stop.is_set():
                return alive
            self.clock.sleep(EDGE_POLL_S)

    def select(self, r: int, algorithm: str, alive: list[Member]) -> list[Member]:
        """The ENs that train round ``r`` (the core strategy's client selection)."""
        by_index = {m.partition_index: m for m in alive}
        picked = select_participants(self.settings, algorithm, r, sorted(by_index))
        return [by_index[i] for i in picked]

    def open_on_sns(
        self, collector: RoundCollector, groups: Mapping[str, list[str]], request: pb.OpenRoundRequest
    ) -> None:
        """Send OpenRound to each SN with its participants, signed by the entry for that SN;
        a refusal or failure drops that SN."""
        for sn_id, ens in groups.items():
            sn = self.registry.get(sn_id)
            if sn is None:
                collector.drop(sn_id, "super node left the federation")
                continue
            one = pb.OpenRoundRequest()
            one.CopyFrom(request)
            one.participants.extend(ens)
            one.sn_node_id = sn_id
            self.authority.sign_open_round(one)
            try:
                reply = self.peers.stub(sn.address).OpenRound(one, timeout=OPEN_TIMEOUT_S)
            except grpc.RpcError as exc:
                collector.drop(sn_id, _refusal("super node", exc))
                continue
            if not reply.ok:
                collector.drop(sn_id, f"super node refused the round: {reply.message}")

    def aggregate_global(
        self, algorithm: str, r: int, accepted: list[Accepted], global_state: Mapping[str, torch.Tensor]
    ) -> GlobalAggregate:
        """The new global model: the one place the entry aggregates.

        The plain mean: the strategy's ``finish`` over the SNs' float64 partial sums and
        weights. Any other aggregator: the strategy's rule over every EN update the SNs
        forwarded, in partition order (the simulation's client order), its decisions naming
        their ENs. Raises RoundFailed when the rule cannot run on the updates delivered.
        """
        if self.template.decomposable(algorithm):
            # in SN node id order: float64 sums added in a fixed order (verify --deep replays it)
            partials = [(a.state, a.samples) for a in sorted(accepted, key=lambda a: a.node_id)]
            return GlobalAggregate(
                merge(global_state, self.template.finish(algorithm, r, global_state, partials))
            )
        updates = sorted(
            (u for a in accepted for u in _forwarded(a.extra.get("updates"))), key=self._order
        )
        try:
            result = self.template.robust(
                algorithm, r, global_state, [(u.state, u.samples) for u in updates]
            )
        except UpdateRejected as exc:
            raise RoundFailed(f"aggregator {self.settings.aggregator}: {exc}") from None
        decisions = tuple(d.with_node(updates[d.index].node_id) for d in result.decisions)
        order = tuple(u.node_id for u in updates)
        return GlobalAggregate(merge(global_state, result.state), decisions, order)

    def _order(self, update: ForwardedUpdate) -> tuple[int, str]:
        member = self.registry.get(update.node_id)
        return (member.partition_index if member is not None else 1 << 30, update.node_id)

    # ---- the round ----
    def run(self, r: int, algorithm: str) -> None:
        """Run round ``r`` from the current model; append its block or raise RoundFailed.

        While it runs, ``in_flight`` names its ENs and SNs: a member of the round that falls
        silent gets its ``node_left`` block after the round block, so the round it trained
        for still counts it (the chain's rules want participants to be members).
        """
        try:
            self._run(r, algorithm)
        finally:
            self.in_flight = frozenset()

    def _run(self, r: int, algorithm: str) -> None:
        started = self.clock.monotonic()
        phases = _Phases()
        self.started_at = self.clock.time()
        alive = self.wait_for_edges()
        if not alive:
            raise RoundFailed("no live edge node")
        chosen = self.select(r, algorithm, alive)
        groups: dict[str, list[str]] = {}
        for m in chosen:
            groups.setdefault(m.parent_sn, []).append(m.node_id)
        self.in_flight = frozenset(m.node_id for m in chosen) | frozenset(groups)
        ref, _, global_state = self.model.current()
        version = ref.version
        # the collector keeps real time: its deadline is on time.monotonic()
        deadline = time.monotonic() + self.settings.round_timeout + COLLECT_GRACE_S
        collector = RoundCollector(
            r, version, algorithm, set(groups), deadline, aggregator=self.settings.aggregator
        )
        collector.reference = (
            self.template.reference(global_state, algorithm)  # the ENs' forwarded updates
            if collector.forward
            else self.template.partial_reference(global_state, algorithm)
        )
        self.intake.open(collector, groups)
        request = pb.OpenRoundRequest(
            round=r, version=version, model_digest=ref.digest, algorithm=algorithm,
            timeout_s=self.settings.round_timeout,
        )
        head = self.chain.latest_head()
        if head is not None:  # signed over with the request: SNs and ENs hold it to theirs
            request.head.CopyFrom(head_to_proto(head))
        log.info("round %d: opening for %d edge nodes on %d SNs", r, len(chosen), len(groups))
        phases.mark("prepare")
        try:
            self.open_on_sns(collector, groups, request)
            collector.wait(self.registry.is_alive)
        finally:
            self.intake.close()
        phases.mark("collect")
        need = max(1, math.ceil(self.settings.quorum * len(chosen)))
        if len(self._outcome(collector, groups)[0]) >= need:  # else the round fails anyway
            self._settle_retained(collector, algorithm, global_state)
            phases.mark("settle")
        used, rejected, manifests = self._outcome(collector, groups)
        accepted = [a for a in collector.accepted.values() if a.samples > 0]
        if len(used) < need or not accepted:
            raise RoundFailed(
                f"quorum not met: {len(used)} of {len(chosen)} edge nodes delivered, {need} needed"
            )
        aggregate = self.aggregate_global(algorithm, r, accepted, global_state)
        new_state = aggregate.state
        kept, decisions = _with_decisions(
            used, rejected, aggregate.decisions, self.authority.key.node_id
        )
        manifests = _set_aside(manifests, used, kept)
        used = kept
        data = encode(new_state)
        new_digest = digest(data)
        phases.mark("aggregate")
        # The kept updates and the model go to the ledger while the ENs evaluate the model
        # (they fetch it from this SN, not from the ledger); the block waits for both.
        with ThreadPoolExecutor(1, thread_name_prefix=f"round-{r}-store") as pool:
            stored = pool.submit(self._store, data, [a.node_id for a in accepted])
            self.model.stage(data)
            self.own_sn.remember_model(data)
            metrics = self._evaluated(used, collector, aggregate.decisions, version, new_digest, algorithm)
            phases.mark("eval")
            stored.result()  # RoundFailed when the model blob could not be stored
        phases.mark("store")
        metrics["seconds"] = round(self.clock.monotonic() - started, 3)
        payload = RoundPayload.create(
            round=r,
            algorithm=algorithm,
            model_version=version + 1,
            model_digest=new_digest,
            participants=[participant_record(u, sn) for sn, u in used],
            manifests=manifests,
            decisions=decisions,
            metrics=metrics,
            aggregation_order=aggregate.order,
        )
        try:
            block = self.chain.append("round", payload)
        except LedgerError as exc:
            raise RoundFailed(f"could not append the round block: {exc}") from None
        phases.mark("append")
        if self.intake.retained is not None:
            self.intake.retained.prune(self.chain.ledger)
            phases.mark("prune")
        self.model.adopt(ModelRef(version + 1, new_digest, r, algorithm), data, new_state)
        if self.on_decisions is not None and aggregate.decisions:
            self.on_decisions([(str(d.node), d.action) for d in aggregate.decisions])
        log.info(
            "round %d done: accuracy %.4f, %d participants, %d rejected, height %d (%s)",
            r, metrics.get("accuracy", float("nan")), len(used), len(decisions), block.height,
            phases,
        )

    def _store(self, data: bytes, sn_ids: list[str]) -> None:
        """Put the kept EN updates of ``sn_ids`` and the new model ``data`` into the ledger."""
        if self.intake.retained is not None:
            self.intake.retained.upload(self.chain.ledger, sn_ids)
        try:
            self.chain.ledger.put_blob(data)
        except LedgerError as exc:
            raise RoundFailed(f"could not store the model blob: {exc}") from None

    def _evaluated(
        self,
        used: list[tuple[str, pb.UsedUpdate]],
        collector: RoundCollector,
        decisions: Sequence[RuleDecision],
        version: int,
        new_digest: str,
        algorithm: str,
    ) -> dict[str, float]:
        """The round block's metrics: the ENs' training figures, the robust rule's decisions,
        and (``eval`` on) the ENs' evaluation of the new model ``version + 1``."""
        metrics = self._metrics([u for _, u in used])
        if collector.forward:
            for action in ("rejected", "clipped", "downweighted"):
                metrics[f"aggregator_{action}"] = float(
                    sum(1 for d in decisions if d.action == action)
                )
        if self.settings.eval:
            metrics.update(self.evaluation.round_metrics(version + 1, new_digest, algorithm))
        return metrics

    def _settle_retained(
        self, collector: RoundCollector, algorithm: str, global_state: Mapping[str, torch.Tensor]
    ) -> None:
        """Keeping updates: refuse an SN that did not hand over the updates it used, or whose
        aggregate is not their partial (``RetainedUpdates.settle``)."""
        retained = self.intake.retained
        if retained is None:
            return
        refused = retained.settle(
            list(collector.accepted.values()),
            self.template.strategy(algorithm),
            self.template.reference(global_state, algorithm),
        )
        for sn_id, reason in refused:
            log.warning("round %d: super node %s refused: %s", collector.round, sn_id, reason)
            collector.refuse(sn_id, reason)

    def _outcome(
        self, collector: RoundCollector, groups: Mapping[str, list[str]]
    ) -> tuple[list[tuple[str, pb.UsedUpdate]], list[tuple[str, str, str]], list[SnManifest]]:
        """The updates the accepted aggregates used (with their SN), every EN left out with its
        reason and who decided it, and the accepted SNs' manifests."""
        used: list[tuple[str, pb.UsedUpdate]] = []
        rejected: list[tuple[str, str, str]] = []
        manifests: list[SnManifest] = []
        entry = self.authority.key.node_id
        for a in collector.accepted.values():
            used.extend((a.node_id, u) for u in _used(a.extra["used"]))
            rejected.extend((n, why, a.node_id) for n, why in _pairs(a.extra["rejected"]))
            manifest = a.extra.get("manifest")
            if isinstance(manifest, SnManifest):
                manifests.append(manifest)
        for sn_id, reason in collector.rejected:
            member = self.registry.get(sn_id)
            if member is not None and member.role == "SN":
                rejected.extend(
                    (en, f"its super node {sn_id} failed: {reason}", entry)
                    for en in groups.get(sn_id, [])
                )
            else:
                rejected.append((sn_id, reason, entry))
        used.sort(key=lambda su: su[1].node_id)
        return used, rejected, manifests

    @staticmethod
    def _metrics(used: list[pb.UsedUpdate]) -> dict[str, float]:
        total = sum(u.samples for u in used)
        loss = sum(u.train_loss * u.samples for u in used) / total if total else 0.0
        return {"samples": float(total), "train_loss": loss}


def _with_decisions(
    used: list[tuple[str, pb.UsedUpdate]],
    rejected: list[tuple[str, str, str]],
    decisions: Sequence[RuleDecision],
    entry: str,
) -> tuple[list[tuple[str, pb.UsedUpdate]], list[Decision]]:
    """The round's participants (with their SN) and the block's decisions: every EN left out
    (``rejected``: node, reason, who decided) as ``rejected``, then each of the entry's
    aggregator decisions by the entry. An update the rule rejected leaves the participants;
    one it clipped or down-weighted stays a participant and is listed with its action."""
    out = [Decision(n, "rejected", why, by) for n, why, by in rejected]
    out += [Decision(str(d.node), d.action, d.reason, entry) for d in decisions]
    gone = {str(d.node) for d in decisions if d.action == "rejected"}
    return [su for su in used if su[1].node_id not in gone], out


def _set_aside(
    manifests: list[SnManifest],
    used: list[tuple[str, pb.UsedUpdate]],
    kept: list[tuple[str, pb.UsedUpdate]],
) -> list[SnManifest]:
    """The manifests with the signed update headers of the used ENs the entry's rule rejected
    (``SnManifest.set_aside``): no participants, yet the manifest is rebuilt from them."""
    counted = {u.node_id for _, u in kept}
    rows: dict[str, list[Participant]] = {}
    for sn, u in used:
        if u.node_id not in counted:
            rows.setdefault(sn, []).append(participant_record(u, sn))
    return [
        replace(m, set_aside=rows[m.sn_node_id]) if m.sn_node_id in rows else m
        for m in manifests
    ]


def _forwarded(value: object) -> list[ForwardedUpdate]:
    if not isinstance(value, Iterable):
        return []
    return [u for u in value if isinstance(u, ForwardedUpdate)]


def _used(value: object) -> list[pb.UsedUpdate]:
    return [u for u in value if isinstance(u, pb.UsedUpdate)] if isinstance(value, Iterable) else []


def _pairs(value: object) -> list[tuple[str, str]]:
    if not isinstance(value, Iterable):
        return []
    return [(str(a), str(b)) for a, b in value]


def _refusal(who: str, exc: grpc.RpcError) -> str:
    """Why a node did not take the round: its own reason when it refused, else unreachable."""
    code = exc.code()
    if code in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.PERMISSION_DENIED):
        return f"{who} refused the round: {str(exc.details())[:300]}"
    return f"{who} unreachable: {code.name}"


class _Phases:
    """Wall seconds of a round's steps, for the entry's "round done" log line."""

    def __init__(self) -> None:
        self._last = time.monotonic()
        self._spent: dict[str, float] = {}

    def mark(self, step: str) -> None:
        """``step`` ended now: the time since the previous mark is its own."""
        now = time.monotonic()
        self._spent[step] = self._spent.get(step, 0.0) + now - self._last
        self._last = now

    def __str__(self) -> str:
        return ", ".join(f"{step} {seconds:.2f} s" for step, seconds in self._spent.items())
