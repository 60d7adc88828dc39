"""The SN role: admits the ENs the entry assigns, relays rounds to them, validates and aggregates updates.

The entry (M-SN) runs this role too, for the ENs it hosts when no other SN is up; its
aggregate then goes to its own entry role over gRPC like any other SN's.

What the SN acts on is checked first: the entry's requests and EN assignments against the
entry key learnt at join (``shared/node/entry_requests.py``), EN heartbeats and update
headers against the EN key of the entry's signed assignment, before anything about the
sender is recorded. Its aggregate goes up with a signed manifest (the EN headers it used,
with their signatures, what it rejected and why, the aggregator, its digest and weight):
partial sums with the plain mean, the used updates themselves with a robust aggregator.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import grpc

from fedchain.services.sn.collector import Accepted, RoundCollector
from fedchain.services.sn.edges import Edge, EdgePool
from fedchain.services.sn.model_ops import ModelTemplate
from fedchain.services.sn.validation import (
    Rejected,
    check_update,
    check_update_claims,
    check_update_header,
)
from fedchain.shared.config import Settings
from fedchain.shared.crypto import NodeKey
from fedchain.shared.digests import MODEL_DIGESTS, digest_of
from fedchain.shared.limits import StreamLimits, chunk_bytes, message_bytes
from fedchain.shared.net.ingress import (
    MAX_REJECTED,
    IngressRefused,
    check_address,
    check_evaluation,
    check_short_text,
    reason_text,
)
from fedchain.shared.net.retry import RETRY, RetryInterrupted
from fedchain.shared.net.signing import SignatureRefused, manifest_fields
from fedchain.shared.net.statements import Domain, sign
from fedchain.shared.net.streams import (
    StreamRefused,
    aggregate_parts,
    fetch_model,
    join_model_chunks,
    read_body,
    read_header,
    update_parts,
)
from fedchain.shared.node.entry_requests import EntryRequests, RequestRefused
from fedchain.shared.node.heads import HeadKeeper, proofs_from_entry
from fedchain.shared.node.heartbeats import HeartbeatRefused, ReplayGuard, check_heartbeat
from fedchain.shared.node.peers import Peers
from fedchain.shared.node.trust import EntryTrust
from fedchain.shared.rpc import node_pb2 as pb
from fedchain.shared.tensors import TensorError, decode, digest, encode

log = logging.getLogger("fedchain.sn")

SUBMIT_RETRY = replace(RETRY, attempts=6)
"""An aggregate is submitted again while the entry is unreachable (about 8 s of pauses in all)."""
MODEL_CACHE = 3


class SuperNode:
    """State and behaviour of an SN; the gRPC servicer and HTTP API call into it."""

    def __init__(
        self,
        settings: Settings,
        key: NodeKey,
        peers: Peers,
        *,
        address: str,
        http_address: str,
        upstream_model: Callable[[int, str], bytes] | None = None,
        entry_address: str = "",
        entry_node_id: str = "",
        entry_http_address: str = "",
        stopping: threading.Event | None = None,
    ) -> None:
        self.settings = settings  # replaced by the federation's settings after joining
        self.key = key
        self.node_id = key.node_id
        self.peers = peers
        self.stopping = stopping if stopping is not None else threading.Event()
        """Set when the node stops: a submission still being retried then ends."""
        self.address = address
        self.http_address = http_address
        self.entry_address = entry_address or settings.entry or address
        self.entry_node_id = entry_node_id
        self.entry_http_address = entry_http_address
        self.edges = EdgePool(settings.heartbeat_timeout)
        self.template: ModelTemplate | None = None
        self._upstream_model = upstream_model
        self._models: dict[str, bytes] = {}
        self._model_lock = threading.Lock()
        self._collector: RoundCollector | None = None
        self._collector_lock = threading.Lock()
        self.max_bytes = message_bytes(settings)
        self.chunk_bytes = chunk_bytes(settings)
        self.last_round = 0
        self.state = "idle"
        self.trust: EntryTrust | None = None
        """The chain id and entry key (set at join; on the entry, at bootstrap)."""
        self.requests = EntryRequests(lambda: self.trust)
        self.beats = ReplayGuard()
        self.heads: HeadKeeper | None = None
        """The highest signed tree head seen (a plain SN; the entry's own SN part signs them)."""
        if not (entry_node_id and entry_node_id == key.node_id):
            self.heads = HeadKeeper(
                settings.state_dir, proofs_from_entry(lambda: self.peers.stub(self.entry_address))
            )

    @property
    def chain_id(self) -> bytes:
        return self.trust.chain_id if self.trust is not None else b""

    def configure(self, settings: Settings) -> None:
        """Adopt the federation's settings (from the entry) and build the model template."""
        self.settings = settings
        self.template = ModelTemplate(settings)

    # ---------------- models ----------------
    def remember_model(self, data: bytes) -> str:
        """Cache model bytes by digest (the latest few)."""
        d = digest_of(data)
        with self._model_lock:
            self._models[d] = data
            while len(self._models) > MODEL_CACHE:
                self._models.pop(next(iter(self._models)))
        return d

    def model_bytes(self, version: int, model_digest: str) -> bytes:
        """The bytes of a global model: cached, or fetched once from the entry and checked."""
        with self._model_lock:
            cached = self._models.get(model_digest)
            if cached is not None:
                return cached
            if self._upstream_model is not None:
                data = self._upstream_model(version, model_digest)
            else:
                stream = fetch_model(
                    self.peers.channel(self.entry_address),
                    pb.FetchModelRequest(version=version, digest=model_digest),
                    timeout=120,
                )
                data = join_model_chunks(stream, self.max_bytes, model_digest or None)
                if model_digest:
                    MODEL_DIGESTS.remember(data, model_digest)  # the reader checked it
            found = digest_of(data)
            if model_digest and found != model_digest:
                raise TensorError("model from the entry does not match the digest of the round")
            self._models[found] = data
            while len(self._models) > MODEL_CACHE:
                self._models.pop(next(iter(self._models)))
            return data

    # ---------------- edges ----------------
    def sync_edges(self, infos: list[pb.EdgeInfo]) -> None:
        """Make the EN pool what the entry says (heartbeat reply); unsigned entries are skipped."""
        good = []
        for info in infos:
            try:
                self.requests.assignment(info, self.node_id)
            except RequestRefused as exc:
                log.warning("ignoring an EN assignment in the entry's reply: %s", exc.reason)
                continue
            good.append(_edge(info))
        self.edges.replace_all(good)

    def assign_edge(self, info: pb.EdgeInfo) -> None:
        """Take an EN the entry assigned (signed by the entry); raise Rejected otherwise."""
        try:
            self.requests.assignment(info, self.node_id)
        except RequestRefused as exc:
            raise Rejected(exc.code, exc.reason) from None
        self.edges.assign(_edge(info))

    def edge_heartbeat(self, req: pb.HeartbeatRequest) -> bool:
        """An EN's heartbeat: False when it is not assigned here; Rejected when it does not hold."""
        edge = self.edges.get(req.node_id)
        if edge is None:
            return False
        try:
            check_heartbeat(req, edge.public_key, self.chain_id, self.beats)
            check_address(req.address, "address")
            check_address(req.http_address, "http address", optional=True)
            check_short_text(req.state, "state", 32)
        except SignatureRefused as exc:
            raise Rejected(grpc.StatusCode.PERMISSION_DENIED, str(exc)) from None
        except (HeartbeatRefused, IngressRefused) as exc:
            raise Rejected(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        return self.edges.beat(req.node_id, req.address, req.http_address)

    # ---------------- rounds ----------------
    def open_round(self, req: pb.OpenRoundRequest) -> pb.OpenRoundReply:
        """Open a round for the live (selected) ENs and start collecting in the background."""
        if self.template is None:
            return pb.OpenRoundReply(ok=False, message="this SN has not joined the federation yet")
        try:
            self.requests.open_round(req, self.node_id, heads=self.heads)
        except RequestRefused as exc:
            raise Rejected(exc.code, exc.reason) from None
        wanted = set(req.participants)
        edges = [e for e in self.edges.alive() if not wanted or e.node_id in wanted]
        deadline = time.monotonic() + max(1.0, req.timeout_s)
        collector = RoundCollector(
            req.round, req.version, req.algorithm, {e.node_id for e in edges}, deadline,
            aggregator=self.settings.aggregator,
        )
        with self._collector_lock:
            if self._collector is not None and not self._collector.closed:
                self._collector.superseded = True  # a newer round supersedes an unfinished one
            self._collector = collector
        threading.Thread(
            target=self._run_round, args=(req, collector, edges), name=f"sn-round-{req.round}", daemon=True
        ).start()
        return pb.OpenRoundReply(ok=True, edges=len(edges))

    def _run_round(self, req: pb.OpenRoundRequest, collector: RoundCollector, edges: list[Edge]) -> None:
        self.state = "training"
        try:
            # Fetch the model before telling ENs, so they all find it in the cache.
            global_bytes = self.model_bytes(req.version, req.model_digest)
            assert self.template is not None
            collector.reference = self.template.reference(
                decode(global_bytes, max_bytes=self.max_bytes), req.algorithm
            )
            for e in edges:  # the entry's signed request, unchanged: the ENs check its signature
                try:
                    reply = self.peers.stub(e.address).OpenRound(req, timeout=10)
                    if not reply.ok:
                        collector.drop(e.node_id, f"edge node refused the round: {reply.message}")
                except grpc.RpcError as exc:
                    collector.drop(e.node_id, _refusal(exc))
            collector.wait(self.edges.is_alive)
            if collector.superseded:
                log.info("round %d was superseded by a newer round; not submitting", req.round)
                return
            self._submit_aggregate(req, collector, global_bytes)
            self.last_round = req.round
        except Exception:
            log.exception("round %d failed on this SN", req.round)
        finally:
            self.state = "idle"

    def _submit_aggregate(self, req: pb.OpenRoundRequest, collector: RoundCollector, global_bytes: bytes) -> None:
        """Send this SN's part of the round up with its signed manifest.

        With the plain mean: float64 weighted sums (safetensors), weight = samples; the entry
        adds the partials of every SN and divides by the total weight (``Strategy.finish``);
        nothing is averaged or cast to float32 here. With any other aggregator (not
        decomposable into sums): the used ENs' update bytes, unchanged, one after the other
        (each one's size in its ``UsedUpdate``), for the entry to run the rule over every EN
        update of the round.
        """
        accepted = sorted(collector.accepted.values(), key=lambda a: a.node_id)
        data = b""
        agg_digest = ""
        weight = 0
        if accepted:
            assert self.template is not None
            if collector.forward:
                data = b"".join(a.data for a in accepted)
                weight = sum(a.samples for a in accepted)
            else:
                partial = self.template.partial(
                    req.algorithm, req.round, [(a.state, a.samples) for a in accepted]
                )
                data = encode(partial.sums)
                weight = partial.weight
            agg_digest = digest(data)
        header = pb.AggregateHeader(
            sn_node_id=self.node_id,
            round=req.round,
            version=req.version,
            samples=weight,
            used=[
                pb.UsedUpdate(
                    node_id=a.node_id, digest=a.digest, samples=a.samples, train_loss=a.train_loss,
                    train_seconds=a.train_seconds, signature=a.signature,
                    total_bytes=len(a.data) if collector.forward else 0,
                )
                for a in accepted
            ],
            rejected=[
                pb.Rejection(node_id=n, reason=reason_text(r))
                for n, r in collector.rejected[:MAX_REJECTED]
            ],
            total_bytes=len(data),
            digest=agg_digest,
            aggregator=collector.aggregator,
        )
        header.signature = sign(self.key, Domain.MANIFEST, self.chain_id, manifest_fields(header))
        def submit() -> pb.SubmitReply:
            reply: pb.SubmitReply = self.peers.stub(self.entry_address).SubmitAggregate(
                aggregate_parts(header, data, self.chunk_bytes), timeout=120
            )
            return reply

        try:
            reply = SUBMIT_RETRY.call(submit, retry_on=_entry_unavailable, stop=self.stopping)
        except RetryInterrupted:
            log.info("round %d: stopping; aggregate not submitted", req.round)
            return
        except grpc.RpcError as exc:
            if _entry_unavailable(exc):
                log.warning("round %d: the entry is unreachable; aggregate dropped", req.round)
            else:
                log.warning("round %d: the entry refused the aggregate: %s", req.round, exc.details())
            return
        log.info("round %d: aggregate of %d updates submitted: %s", req.round, len(accepted), reply.message)
        self._hand_over(req, accepted, set(reply.retain))

    def used_update_bytes(self, round_no: int, digests: Collection[str]) -> dict[str, bytes]:
        """The bytes of the EN updates with these digests this SN accepted in round ``round_no``.

        The entry keeps its own SN's updates from here (the same process: no hand-over
        stream, see ``RetainedUpdates.keep_own``); an update not found is left out.
        """
        wanted = set(digests)
        with self._collector_lock:
            collector = self._collector
        if collector is None or collector.round != round_no:
            return {}
        return {a.digest: a.data for a in list(collector.accepted.values()) if a.digest in wanted}

    def _hand_over(self, req: pb.OpenRoundRequest, accepted: list[Accepted], wanted: set[str]) -> None:
        """Send the entry the used updates it asked for (``retain``): each EN's signed header
        unchanged, then its bytes, so that the ledger keeps them (``FEDCHAIN_KEEP_UPDATES``)."""
        for a in accepted:
            if a.digest not in wanted:
                continue
            header = pb.UpdateHeader(
                node_id=a.node_id, round=req.round, version=req.version, samples=a.samples,
                digest=a.digest, signature=a.signature, total_bytes=len(a.data),
                train_loss=a.train_loss, train_seconds=a.train_seconds,
            )
            try:
                self.peers.stub(self.entry_address).RetainUpdate(
                    update_parts(header, a.data, self.chunk_bytes), timeout=120
                )
            except grpc.RpcError as exc:
                log.warning(
                    "round %d: the entry did not take the update of %s: %s",
                    req.round, a.node_id, exc.details(),
                )

    def submit_update(self, parts: Iterator[pb.UpdatePart]) -> pb.SubmitReply:
        """Receive, validate and record one EN update. Raises Rejected on a refusal."""
        try:
            h = read_header(parts, "update").header
        except StreamRefused as exc:
            raise Rejected(exc.code, exc.reason) from None
        with self._collector_lock:
            collector = self._collector
        if collector is None or collector.closed:
            raise Rejected(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"no round is open on this SN (update for round {h.round})",
            )
        edge = check_update_header(h, self.edges.get, self.chain_id, collector)
        try:
            check_update_claims(h, edge, collector)
            try:
                data = read_body(
                    parts, StreamLimits.for_bytes(self.max_bytes), "update",
                    size=h.total_bytes, digest=h.digest,
                )
            except StreamRefused as exc:
                raise Rejected(exc.code, exc.reason) from None
            reference = collector.reference
            if reference is None:
                raise Rejected(grpc.StatusCode.UNAVAILABLE, "this SN has not received the round's model yet")
            state = check_update(
                round_no=h.round,
                version=h.version,
                expected_round=collector.round,
                expected_version=collector.version,
                claimed_digest=h.digest,
                data=data,
                reference=reference,
                max_bytes=self.max_bytes,
            )
        except Rejected as rej:
            # the header's signature held (check_update_header): the sender is who it says
            collector.reject(edge.node_id, reason_text(rej.reason))
            raise
        item = Accepted(
            h.node_id, state, int(h.samples), h.digest, float(h.train_loss),
            train_seconds=float(h.train_seconds), signature=bytes(h.signature), data=data,
        )
        if not collector.accept(item):
            raise Rejected(grpc.StatusCode.FAILED_PRECONDITION, f"round {collector.round} is already closed")
        return pb.SubmitReply(accepted=True, message=f"update accepted for round {collector.round}")

    # ---------------- evaluation ----------------
    def evaluate(self, req: pb.EvaluateRequest) -> pb.EvaluateReply:
        """Ask every live EN for its personal accuracy on model ``version`` (the entry's
        signed request, relayed unchanged); an answer that does not hold is listed as failed."""
        try:
            self.requests.evaluate(req, self.node_id)
        except RequestRefused as exc:
            raise Rejected(exc.code, exc.reason) from None
        edges = self.edges.alive()
        reply = pb.EvaluateReply()
        if not edges:
            return reply
        self.model_bytes(req.version, req.model_digest)  # warm the cache for the ENs
        timeout = max(1.0, req.timeout_s - 1.0)

        def ask(e: Edge) -> tuple[Edge, pb.EvaluateReply | None, str]:
            try:
                return e, self.peers.stub(e.address).Evaluate(req, timeout=timeout), ""
            except grpc.RpcError as exc:
                return e, None, f"evaluation failed: {exc.code().name}: {exc.details()}"

        with ThreadPoolExecutor(max_workers=min(16, len(edges))) as pool:
            for e, answer, why in pool.map(ask, edges):
                if answer is None:
                    reply.failed.append(pb.Rejection(node_id=e.node_id, reason=why))
                    continue
                for c in answer.clients:
                    why = _bad_evaluation(e, c)
                    if why:
                        reply.failed.append(pb.Rejection(node_id=e.node_id, reason=why))
                        continue
                    c.sn = self.node_id
                    reply.clients.append(c)
        return reply


def _edge(info: pb.EdgeInfo) -> Edge:
    return Edge(
        info.node_id, bytes(info.public_key), info.address, info.http_address, info.partition_index,
        partition_size=int(info.partition_size),
    )


def _bad_evaluation(edge: Edge, c: pb.ClientEval) -> str:
    """Why an EN's evaluation answer cannot be taken ("" when it can)."""
    if c.node_id != edge.node_id:
        return f"evaluation answer names {c.node_id[:40]!r}, not the edge node asked"
    if c.partition_index != edge.partition_index:
        return "evaluation answer names another partition"
    try:
        check_evaluation(int(c.correct), int(c.total), float(c.loss))
    except IngressRefused as exc:
        return reason_text(f"evaluation answer refused: {exc}")
    return ""


def _refusal(exc: grpc.RpcError) -> str:
    """Why an EN did not take the round: its own reason when it refused, else unreachable."""
    code = exc.code()
    if code in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.PERMISSION_DENIED):
        return f"edge node refused the round: {str(exc.details())[:300]}"
    return f"edge node unreachable: {code.name}"


def _entry_unavailable(error: BaseException) -> bool:
    """An aggregate is submitted again only while the entry cannot be reached."""
    return isinstance(error, grpc.RpcError) and error.code() == grpc.StatusCode.UNAVAILABLE
