"""The entry super node (M-SN): admissions, the round state machine, global aggregation and block writing."""

from __future__ import annotations

import hmac
import json
import logging
import math
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import torch

from fedchain.services.sn.chain import EntryChain, ModelRef
from fedchain.services.sn.collector import Accepted, RoundCollector
from fedchain.services.sn.model_ops import ModelTemplate, initial_state, merge, select_participants
from fedchain.services.sn.registry import FederationFull, Member, NoSuperNode, Registry
from fedchain.services.sn.supernode import SuperNode
from fedchain.services.sn.validation import Rejected, check_update, partial_max_bytes
from fedchain.shared.config import Settings
from fedchain.shared.crypto import NodeKey, node_id_for, verify_signature
from fedchain.shared.net.federation import fl_config, fl_config_strings
from fedchain.shared.net.signing import join_message
from fedchain.shared.node.peers import Peers
from fedchain.shared.rpc import node_pb2 as pb
from fedchain.shared.tensors import decode, digest, encode

log = logging.getLogger("fedchain.entry")

MIN_RETRY_SPAN_S = 60.0
"""A failing round (ledger down, quorum missed) is retried for max(this, round_timeout) seconds."""
MAX_RETRY_PAUSE_S = 5.0
"""Longest pause between two attempts of a failing round."""
JOIN_CLOCK_SKEW_MS = 10 * 60 * 1000
COLLECT_GRACE_S = 15.0


class RoundFailed(Exception):
    """A round that could not complete (quorum not met, ledger down, ...); nothing was appended."""


class Busy(Exception):
    """Training is already running (HTTP 409)."""


@dataclass
class TrainingPlan:
    """What the driver works toward; saved so a restarted entry resumes."""

    target_round: int = 0
    algorithm: str = "fedper"
    paused: bool = False


class EntryRole:
    """Everything only the entry does; shares the process with its own SuperNode role."""

    def __init__(
        self,
        settings: Settings,
        key: NodeKey,
        peers: Peers,
        sn: SuperNode,
        chain: EntryChain,
        *,
        address: str,
        http_address: str,
    ) -> None:
        self.settings = settings
        self.key = key
        self.node_id = key.node_id
        self.peers = peers
        self.sn = sn
        self.chain = chain
        self.address = address
        self.http_address = http_address
        state_dir = Path(settings.state_dir)
        state_dir.mkdir(parents=True, exist_ok=True)
        self._plan_path = state_dir / "training.json"
        self.registry = Registry(state_dir / "registry.json", settings.heartbeat_timeout)
        self.registry.add_entry(self.node_id, key.public_hex, address, http_address)
        self.template = ModelTemplate(settings)
        self.max_bytes = settings.max_message_mb * 1024 * 1024
        self._lock = threading.RLock()
        self.state = "idle"
        self.error: str | None = None
        self.plan = TrainingPlan(algorithm=settings.algorithm)
        self.model = ModelRef(0, "", 0, "")
        self.global_bytes = b""
        self.global_state: dict[str, torch.Tensor] = {}
        self._agg: RoundCollector | None = None
        self._driver: threading.Thread | None = None
        self._stop = threading.Event()
        self.round_started: float | None = None

    # ------------------------------------------------------------ start-up
    def bootstrap(self) -> None:
        """Write genesis on an empty chain, or resume from the chain tip."""
        genesis = self.chain.genesis()
        if genesis is None:
            state = initial_state(self.settings)
            data = encode(state)
            d = self.chain.ledger.put_blob(data)
            self.chain.append(
                "genesis",
                {
                    "config": fl_config_strings(self.settings),
                    "model_digest": d,
                    "entry_node_id": self.node_id,
                    "entry_public_key": self.key.public_hex,
                },
            )
            log.info("genesis written: model %s", d[:16])
        elif genesis.payload.entry_public_key != self.key.public_hex:
            from fedchain.shared.config import ConfigError

            raise ConfigError(
                "the chain was started by another entry node (its genesis names a different key); "
                "use that node's --state-dir or a fresh ledger"
            )
        ref = self.chain.latest_model()
        data = self.chain.ledger.get_blob(ref.digest)
        self.model = ref
        self.global_bytes = data
        self.global_state = decode(data, max_bytes=self.max_bytes)
        self.sn.remember_model(data)
        if self._plan_path.is_file():
            raw = json.loads(self._plan_path.read_text(encoding="utf-8"))
            self.plan = TrainingPlan(**raw)
        log.info("entry at round %d, model version %d (height %d)", ref.round, ref.version, self.chain.height())
        if self.plan.target_round > self.model.round and not self.plan.paused:
            log.info("resuming training toward round %d", self.plan.target_round)
            self._start_driver()

    def _save_plan(self) -> None:
        tmp = self._plan_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.plan.__dict__), encoding="utf-8")
        os.replace(tmp, self._plan_path)

    # ------------------------------------------------------------ admissions
    def join(self, req: pb.JoinRequest) -> pb.JoinReply:
        """Admit an SN or EN; raises Rejected with a clear reason."""
        if not hmac.compare_digest(req.token.encode(), self.settings.join_token.encode()):
            raise Rejected(grpc.StatusCode.UNAUTHENTICATED, "wrong join token (set FEDCHAIN_JOIN_TOKEN)")
        if req.role not in ("SN", "EN"):
            raise Rejected(grpc.StatusCode.INVALID_ARGUMENT, f"role must be SN or EN, got {req.role!r}")
        pk = bytes(req.public_key)
        if len(pk) != 32:
            raise Rejected(grpc.StatusCode.INVALID_ARGUMENT, "public key must be 32 bytes (Ed25519)")
        if abs(int(time.time() * 1000) - req.timestamp_ms) > JOIN_CLOCK_SKEW_MS:
            raise Rejected(grpc.StatusCode.INVALID_ARGUMENT, "join request timestamp is too far from the entry's clock")
        if not verify_signature(pk, bytes(req.signature), join_message(req.role, pk, req.address, req.timestamp_ms)):
            raise Rejected(grpc.StatusCode.PERMISSION_DENIED, "bad signature on join request")
        node_id = node_id_for(pk)
        if node_id == self.node_id:
            raise Rejected(grpc.StatusCode.INVALID_ARGUMENT, "a node cannot join with the entry's own key")
        existing = self.registry.get(node_id)
        if existing is not None and existing.role != req.role:
            raise Rejected(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{node_id} joined as {existing.role} before; use a separate --state-dir per node",
            )
        with self._lock:
            if req.role == "SN":
                member, record = self.registry.admit_sn(node_id, pk.hex(), req.address, req.http_address)
            else:
                try:
                    member, record = self.registry.admit_en(
                        node_id, pk.hex(), req.address, req.http_address, self.settings.clients, req.avoid_sn
                    )
                except (FederationFull, NoSuperNode) as exc:
                    raise Rejected(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)) from None
            if record:
                try:
                    self.chain.append(
                        "node_joined",
                        {
                            "node_id": node_id,
                            "role": req.role,
                            "public_key": pk.hex(),
                            "parent_sn": member.parent_sn,
                            "address": req.address,
                        },
                    )
                except Exception as exc:  # noqa: BLE001 - ledger refusal/unavailability
                    if existing is None:
                        self.registry.remove(node_id)
                    raise Rejected(grpc.StatusCode.UNAVAILABLE, f"could not record the join on the chain: {exc}") from None
        reply = pb.JoinReply(
            node_id=node_id,
            entry_node_id=self.node_id,
            config_json=json.dumps(fl_config(self.settings)),
            height=self.chain.height(),
            entry_http_address=self.http_address,
        )
        if req.role == "EN":
            parent = self.registry.get(member.parent_sn)
            assert parent is not None
            reply.sn_node_id = parent.node_id
            reply.sn_address = parent.address
            reply.partition_index = member.partition_index
            self._push_edge(parent, member)
        log.info("%s %s joined (%s)", req.role, node_id, req.address)
        return reply

    def _push_edge(self, parent: Member, edge: Member) -> None:
        info = _edge_info(edge)
        if parent.node_id == self.node_id:
            self.sn.assign_edge(info)
            return
        try:
            self.peers.stub(parent.address).AssignEdge(info, timeout=5)
        except grpc.RpcError as exc:
            log.warning("could not tell SN %s about EN %s: %s", parent.node_id, edge.node_id, exc.code().name)

    def heartbeat(self, req: pb.HeartbeatRequest) -> pb.HeartbeatReply:
        """An SN's heartbeat: refresh its liveness; answer with the ENs assigned to it."""
        known = self.registry.heartbeat(req.node_id, req.address, req.http_address, list(req.alive_edges))
        reply = pb.HeartbeatReply(known=known, entry_node_id=self.node_id, entry_http_address=self.http_address)
        if known:
            reply.edges.extend(_edge_info(m) for m in self.registry.edges_of(req.node_id))
        return reply

    def tick(self) -> None:
        """Periodic upkeep: sync the entry's own SN part with the registry."""
        self.sn.sync_edges([_edge_info(m) for m in self.registry.edges_of(self.node_id)])
        self.registry.set_entry_edges(self.node_id, [e.node_id for e in self.sn.edges.alive()])

    # ------------------------------------------------------------ models
    def model_bytes(self, version: int, model_digest: str) -> bytes:
        """A global model by digest (or version): memory first, then the blob store."""
        if not model_digest:
            found = self.chain.model_digest(version)
            if found is None:
                raise KeyError(f"unknown model version {version}")
            model_digest = found
        if model_digest == self.model.digest and self.global_bytes:
            return self.global_bytes
        pending = self.sn._models.get(model_digest)
        if pending is not None:
            return pending
        return self.chain.ledger.get_blob(model_digest)

    # ------------------------------------------------------------ aggregates
    def submit_aggregate(self, parts: Iterator[pb.AggregatePart]) -> pb.SubmitReply:
        """Receive an SN's aggregate for the open round; raises Rejected on refusal."""
        first = next(parts, None)
        if first is None or first.WhichOneof("part") != "header":
            raise Rejected(grpc.StatusCode.INVALID_ARGUMENT, "an aggregate stream must start with its header")
        h = first.header
        collector = self._agg
        if collector is None or collector.closed:
            raise Rejected(grpc.StatusCode.FAILED_PRECONDITION, f"no round is open (aggregate for round {h.round})")
        limit = partial_max_bytes(collector.reference or {}, self.max_bytes)
        buf = bytearray()
        for part in parts:
            if len(buf) + len(part.data) > limit:
                raise Rejected(grpc.StatusCode.RESOURCE_EXHAUSTED, f"aggregate exceeds {limit} bytes")
            buf.extend(part.data)
        member = self.registry.get(h.sn_node_id)
        if member is None or member.role != "SN":
            raise Rejected(grpc.StatusCode.PERMISSION_DENIED, f"unknown super node {h.sn_node_id}")
        pk = bytes.fromhex(member.public_key)
        extra: dict[str, object] = {
            "used": list(h.used),
            "rejected": [(r.node_id, r.reason) for r in h.rejected],
        }
        try:
            if h.round != collector.round or h.version != collector.version:
                raise Rejected(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"aggregate is for round {h.round} version {h.version}, "
                    f"but round {collector.round} on version {collector.version} is open",
                )
            if h.total_bytes == 0:
                from fedchain.shared.net.signing import update_message

                if not verify_signature(pk, bytes(h.signature), update_message("00" * 32, h.round, h.version)):
                    raise Rejected(grpc.StatusCode.PERMISSION_DENIED, "bad signature on aggregate")
                collector.accept(Accepted(h.sn_node_id, {}, 0, "", 0.0, extra))
                return pb.SubmitReply(accepted=True, message="empty aggregate recorded")
            assert collector.reference is not None
            state = check_update(
                node_id=h.sn_node_id,
                public_key=pk,
                round_no=h.round,
                version=h.version,
                expected_round=collector.round,
                expected_version=collector.version,
                claimed_digest=h.digest,
                signature=bytes(h.signature),
                data=bytes(buf),
                reference=collector.reference,
                max_bytes=limit,
            )
            if h.samples <= 0 or h.samples != sum(u.samples for u in h.used):
                raise Rejected(grpc.StatusCode.INVALID_ARGUMENT, "aggregate sample count does not add up")
        except Rejected as rej:
            collector.reject(h.sn_node_id, rej.reason)
            for u in h.used:
                collector.rejected.append((u.node_id, f"aggregate of SN {h.sn_node_id} refused: {rej.reason}"))
            raise
        if not collector.accept(Accepted(h.sn_node_id, state, int(h.samples), h.digest, 0.0, extra)):
            raise Rejected(grpc.StatusCode.ALREADY_EXISTS, f"{h.sn_node_id} already answered round {h.round}")
        return pb.SubmitReply(accepted=True, message=f"aggregate of {len(h.used)} updates accepted")

    # ------------------------------------------------------------ training control
    def start_training(self, rounds: int, algorithm: str | None) -> dict[str, Any]:
        """Train ``rounds`` more rounds (resumes after a pause). Raises Busy when running."""
        with self._lock:
            if self._driver is not None and self._driver.is_alive():
                raise Busy(f"training is already running ({self.state}); pause it or wait")
            algo = algorithm or self.settings.algorithm
            start = self.model.round + 1
            self.plan = TrainingPlan(target_round=self.model.round + rounds, algorithm=algo, paused=False)
            self._save_plan()
            self.error = None
            self._start_driver()
            return {"status": "training", "algorithm": algo, "start_round": start, "target_round": self.plan.target_round}

    def pause(self) -> dict[str, Any]:
        """Finish the current round, then hold."""
        with self._lock:
            if self._driver is not None and self._driver.is_alive():
                self.state = "pausing"
            elif self.plan.target_round > self.model.round:
                self.state = "paused"
            self.plan.paused = True
            self._save_plan()
            return {"status": self.state, "round": self.model.round}

    def _start_driver(self) -> None:
        self.state = "training"
        self._driver = threading.Thread(target=self._drive, name="round-driver", daemon=True)
        self._driver.start()

    def stop(self) -> None:
        """Stop the driver after the current round (process shutdown)."""
        self._stop.set()
        if self._driver is not None:
            self._driver.join(timeout=2)

    def retry_span(self) -> float:
        """Seconds a failing round is retried before the driver gives up (derived from round_timeout)."""
        return max(MIN_RETRY_SPAN_S, self.settings.round_timeout)

    def _drive(self) -> None:
        failures = 0
        failing_since = 0.0
        while not self._stop.is_set():
            with self._lock:
                if self.state == "pausing":
                    self.state = "paused"
                    return
                if self.model.round >= self.plan.target_round:
                    self.state = "idle"
                    self.plan.paused = False
                    self._save_plan()
                    return
            r = self.model.round + 1
            try:
                self._ledger_ready(resync=failures > 0)
                if self.model.round >= r:
                    failures = 0
                    self.error = None
                    continue  # round r was on the chain already (its append reply was lost)
                self.run_round(r, self.plan.algorithm)
                failures = 0
                self.error = None
            except RoundFailed as exc:
                if failures == 0:
                    failing_since = time.monotonic()
                failures += 1
                span = self.retry_span()
                self.error = f"round {r}: {exc}"
                log.warning("round %d failed (%d/%.0fs): %s", r, failures, span, exc)
                if time.monotonic() - failing_since >= span:
                    log.error("round %d kept failing for %.0f s; training stops", r, span)
                    with self._lock:
                        self.state = "idle"
                    return
                self._stop.wait(min(MAX_RETRY_PAUSE_S, self.settings.heartbeat_interval * failures))
            except Exception as exc:
                log.exception("round %d crashed", r)
                self.error = f"round {r}: {exc}"
                with self._lock:
                    self.state = "idle"
                return

    def _ledger_ready(self, *, resync: bool) -> None:
        """Raise RoundFailed while the ledger is unreachable; after a failure adopt rounds already on the chain."""
        try:
            self.chain.height()
            if not resync:
                return
            ref = self.chain.latest_model()
            if ref.round <= self.model.round:
                return
            data = self.chain.ledger.get_blob(ref.digest)
        except Exception as exc:  # noqa: BLE001 - LedgerUnavailable, or the gRPC/DB error behind it
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise RoundFailed(f"waiting for the ledger: {first}") from None
        state = decode(data, max_bytes=self.max_bytes)
        self.sn.remember_model(data)
        with self._lock:
            self.model = ref
            self.global_bytes = data
            self.global_state = state
        log.info("round %d is on the chain already (its append reply was lost); continuing from it", ref.round)

    # ------------------------------------------------------------ one round
    def _wait_for_edges(self) -> list[Member]:
        """Live ENs, waiting (bounded) for all registered ENs; after a short settle time a quorum will do."""
        total = len(self.registry.members("EN"))
        need = max(1, math.ceil(self.settings.quorum * total))
        interval = self.settings.heartbeat_interval
        settle = time.monotonic() + 2 * interval  # restarted SNs report their ENs within a beat
        deadline = time.monotonic() + self.settings.heartbeat_timeout + 2 * interval
        while True:
            alive = self.registry.alive_edges()
            now = time.monotonic()
            if len(alive) >= total or (len(alive) >= need and now >= settle):
                return alive
            if now >= deadline or self._stop.is_set():
                return alive
            time.sleep(0.2)

    def run_round(self, r: int, algorithm: str) -> None:
        """Run round ``r`` from the current model; append its block or raise RoundFailed."""
        started = time.monotonic()
        self.round_started = time.time()
        alive = self._wait_for_edges()
        if not alive:
            raise RoundFailed("no live edge node")
        by_index = {m.partition_index: m for m in alive}
        chosen = [by_index[i] for i in select_participants(self.settings, algorithm, r, sorted(by_index))]
        groups: dict[str, list[str]] = {}
        for m in chosen:
            groups.setdefault(m.parent_sn, []).append(m.node_id)
        version = self.model.version
        deadline = time.monotonic() + self.settings.round_timeout + COLLECT_GRACE_S
        collector = RoundCollector(r, version, algorithm, set(groups), deadline)
        collector.reference = self.template.partial_reference(self.global_state, algorithm)
        self._agg = collector
        request_base = pb.OpenRoundRequest(
            round=r,
            version=version,
            model_digest=self.model.digest,
            algorithm=algorithm,
            timeout_s=self.settings.round_timeout,
        )
        log.info("round %d: opening for %d edge nodes on %d SNs", r, len(chosen), len(groups))
        for sn_id, ens in groups.items():
            sn = self.registry.get(sn_id)
            assert sn is not None
            try:
                request = pb.OpenRoundRequest()
                request.CopyFrom(request_base)
                request.participants.extend(ens)
                reply = self.peers.stub(sn.address).OpenRound(request, timeout=30)
                if not reply.ok:
                    collector.drop(sn_id, f"super node refused the round: {reply.message}")
            except grpc.RpcError as exc:
                collector.drop(sn_id, f"super node unreachable: {exc.code().name}")
        collector.wait(self.registry.is_alive)
        self._agg = None
        rejected: list[tuple[str, str]] = []
        used: list[pb.UsedUpdate] = []
        accepted = [a for a in collector.accepted.values() if a.samples > 0]
        for a in collector.accepted.values():
            used.extend(a.extra["used"])  # type: ignore[arg-type]
        for a in collector.accepted.values():
            rejected.extend(a.extra["rejected"])  # type: ignore[arg-type]
        for sn_id, reason in collector.rejected:
            member = self.registry.get(sn_id)
            if member is not None and member.role == "SN":
                rejected.extend((en, f"its super node {sn_id} failed: {reason}") for en in groups.get(sn_id, []))
            else:
                rejected.append((sn_id, reason))
        used.sort(key=lambda u: u.node_id)
        need = max(1, math.ceil(self.settings.quorum * len(chosen)))
        if len(used) < need or not accepted:
            raise RoundFailed(f"quorum not met: {len(used)} of {len(chosen)} edge nodes delivered, {need} needed")
        aggregated = self.template.finish(algorithm, r, self.global_state, [(a.state, a.samples) for a in accepted])
        new_state = merge(self.global_state, aggregated)
        data = encode(new_state)
        new_digest = digest(data)
        try:
            self.chain.ledger.put_blob(data)
        except Exception as exc:  # noqa: BLE001
            raise RoundFailed(f"could not store the model blob: {exc}") from None
        self.sn.remember_model(data)
        metrics: dict[str, float] = {
            "samples": float(sum(u.samples for u in used)),
            "train_loss": _weighted((u.train_loss, u.samples) for u in used),
        }
        if self.settings.eval:
            metrics.update(self._round_eval(version + 1, new_digest))
        metrics["seconds"] = round(time.monotonic() - started, 3)
        payload = {
            "round": r,
            "algorithm": algorithm,
            "model_version": version + 1,
            "model_digest": new_digest,
            "merkle_root": _merkle_hex([u.digest for u in used]),
            "participants": [u.node_id for u in used],
            "update_digests": [u.digest for u in used],
            "rejected": rejected,
            "metrics": metrics,
        }
        try:
            block = self.chain.append("round", payload)
        except Exception as exc:  # noqa: BLE001
            raise RoundFailed(f"could not append the round block: {exc}") from None
        with self._lock:
            self.model = ModelRef(version + 1, new_digest, r, algorithm)
            self.global_bytes = data
            self.global_state = new_state
        log.info(
            "round %d done: accuracy %.4f, %d participants, %d rejected, height %d",
            r, metrics.get("accuracy", float("nan")), len(used), len(rejected), block.height,
        )

    def _round_eval(self, version: int, model_digest: str) -> dict[str, float]:
        reply = self.evaluate_all(version, model_digest)
        correct = sum(c.correct for c in reply.clients)
        total = sum(c.total for c in reply.clients)
        if total == 0:
            return {}
        return {
            "accuracy": correct / total,
            "loss": sum(c.loss * c.total for c in reply.clients) / total,
            "correct": float(correct),
            "total": float(total),
            "evaluated": float(len(reply.clients)),
        }

    def evaluate_all(self, version: int | None = None, model_digest: str | None = None) -> pb.EvaluateReply:
        """Personal evaluation on every live EN, through their SNs."""
        if version is None:
            version, model_digest = self.model.version, self.model.digest
        req = pb.EvaluateRequest(
            version=version,
            model_digest=model_digest or "",
            timeout_s=self.settings.round_timeout,
            algorithm=self.plan.algorithm,
        )
        out = pb.EvaluateReply()
        for sn in self.registry.alive_sns():
            if not self.registry.edges_of(sn.node_id):
                continue
            try:
                part = self.peers.stub(sn.address).Evaluate(req, timeout=self.settings.round_timeout + 5)
                out.clients.extend(part.clients)
                out.failed.extend(part.failed)
            except grpc.RpcError as exc:
                out.failed.append(pb.Rejection(node_id=sn.node_id, reason=f"super node: {exc.code().name}"))
        return out

    def save(self, path: str | None) -> dict[str, Any]:
        """Write the current global model to a file and record a checkpoint block."""
        with self._lock:
            ref, data = self.model, self.global_bytes
        target = Path(path) if path else Path(self.settings.state_dir) / "models" / f"model-v{ref.version}.safetensors"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
        block = self.chain.append(
            "checkpoint", {"model_version": ref.version, "model_digest": ref.digest, "note": f"saved to {target}"}
        )
        return {"version": ref.version, "digest": ref.digest, "height": int(block.height), "path": str(target.resolve())}

    def status(self) -> dict[str, Any]:
        """The /status answer of the entry."""
        return {
            "node_id": self.node_id,
            "role": "SN",
            "entry": True,
            "state": self.state,
            "algorithm": self.plan.algorithm,
            "round": self.model.round,
            "target_round": max(self.plan.target_round, self.model.round),
            "model_version": self.model.version,
            "height": self.chain.cached_height,
            "ens": len(self.registry.alive_edges()),
            "sns": len(self.registry.alive_sns()),
            "error": self.error,
        }


def _edge_info(m: Member) -> pb.EdgeInfo:
    return pb.EdgeInfo(
        node_id=m.node_id,
        public_key=bytes.fromhex(m.public_key),
        address=m.address,
        http_address=m.http_address,
        partition_index=m.partition_index,
    )


def _weighted(pairs: Iterator[tuple[float, int]]) -> float:
    items = list(pairs)
    total = sum(n for _, n in items)
    return sum(v * n for v, n in items) / total if total else 0.0


def _merkle_hex(digests: list[str]) -> str:
    from fedchain.shared.chain.payloads import merkle_root_hex

    return merkle_root_hex(digests)
