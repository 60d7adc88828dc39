"""The SN role: admits the ENs the entry assigns, relays rounds to them, validates and aggregates updates.

The entry (M-SN) runs this role too, for the ENs it hosts when no other SN is up; its
aggregate then goes to its own entry role over gRPC like any other SN's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc

from fedchain.services.sn.collector import Accepted, RoundCollector
from fedchain.services.sn.edges import Edge, EdgePool
from fedchain.services.sn.model_ops import ModelTemplate
from fedchain.services.sn.validation import Rejected, check_update
from fedchain.shared.config import Settings
from fedchain.shared.crypto import NodeKey
from fedchain.shared.digests import MODEL_DIGESTS, digest_of
from fedchain.shared.limits import StreamLimits, chunk_bytes, message_bytes
from fedchain.shared.net.signing import update_message
from fedchain.shared.net.streams import (
    StreamRefused,
    aggregate_parts,
    join_model_chunks,
    read_body,
    read_header,
)
from fedchain.shared.node.peers import Peers
from fedchain.shared.rpc import node_pb2 as pb
from fedchain.shared.tensors import TensorError, decode, digest, encode

log = logging.getLogger("fedchain.sn")

SUBMIT_RETRIES = 5
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
    ) -> None:
        self.settings = settings  # replaced by the federation's settings after joining
        self.key = key
        self.node_id = key.node_id
        self.peers = peers
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
                stream = self.peers.stub(self.entry_address).FetchModel(
                    pb.FetchModelRequest(version=version, digest=model_digest), timeout=120
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
        """Make the EN pool what the entry says (heartbeat reply)."""
        self.edges.replace_all([_edge(i) for i in infos])

    def assign_edge(self, info: pb.EdgeInfo) -> None:
        self.edges.assign(_edge(info))

    # ---------------- rounds ----------------
    def open_round(self, req: pb.OpenRoundRequest) -> pb.OpenRoundReply:
        """Open a round for the live (selected) ENs and start collecting in the background."""
        if self.template is None:
            return pb.OpenRoundReply(ok=False, message="this SN has not joined the federation yet")
        wanted = set(req.participants)
        edges = [e for e in self.edges.alive() if not wanted or e.node_id in wanted]
        deadline = time.monotonic() + max(1.0, req.timeout_s)
        collector = RoundCollector(req.round, req.version, req.algorithm, {e.node_id for e in edges}, deadline)
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
            edge_req = pb.OpenRoundRequest(
                round=req.round,
                version=req.version,
                model_digest=req.model_digest,
                algorithm=req.algorithm,
                timeout_s=max(1.0, collector.deadline - time.monotonic() - 1.0),
            )
            for e in edges:
                try:
                    reply = self.peers.stub(e.address).OpenRound(edge_req, timeout=10)
                    if not reply.ok:
                        collector.drop(e.node_id, f"edge node refused the round: {reply.message}")
                except grpc.RpcError as exc:
                    collector.drop(e.node_id, f"edge node unreachable: {exc.code().name}")
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
        """Send this SN's partial aggregate up: float64 weighted sums (safetensors), weight = samples.

        The entry adds the partials of every SN and divides by the total weight
        (``Strategy.finish``); nothing is averaged or cast to float32 here.
        """
        accepted = sorted(collector.accepted.values(), key=lambda a: a.node_id)
        data = b""
        agg_digest = ""
        weight = 0
        if accepted:
            assert self.template is not None
            partial = self.template.partial(req.algorithm, req.round, [(a.state, a.samples) for a in accepted])
            data = encode(partial.sums)
            agg_digest = digest(data)
            weight = partial.weight
        header = pb.AggregateHeader(
            sn_node_id=self.node_id,
            round=req.round,
            version=req.version,
            samples=weight,
            used=[
                pb.UsedUpdate(node_id=a.node_id, digest=a.digest, samples=a.samples, train_loss=a.train_loss)
                for a in accepted
            ],
            rejected=[pb.Rejection(node_id=n, reason=r) for n, r in collector.rejected],
            total_bytes=len(data),
            digest=agg_digest,
            signature=self.key.sign(update_message(agg_digest or "00" * 32, req.round, req.version)),
        )
        for attempt in range(SUBMIT_RETRIES):
            try:
                reply = self.peers.stub(self.entry_address).SubmitAggregate(
                    aggregate_parts(header, data, self.chunk_bytes), timeout=120
                )
                log.info("round %d: aggregate of %d updates submitted: %s", req.round, len(accepted), reply.message)
                return
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    log.warning("round %d: the entry refused the aggregate: %s", req.round, exc.details())
                    return
                time.sleep(min(5.0, 0.5 * 2**attempt))
        log.warning("round %d: the entry is unreachable; aggregate dropped", req.round)

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
        try:
            try:
                data = read_body(
                    parts, StreamLimits.for_bytes(self.max_bytes), "update",
                    size=h.total_bytes, digest=h.digest,
                )
            except StreamRefused as exc:
                raise Rejected(exc.code, exc.reason) from None
            edge = self.edges.get(h.node_id)
            if collector.has_answered(h.node_id):
                raise Rejected(grpc.StatusCode.ALREADY_EXISTS, f"{h.node_id} already answered round {collector.round}")
            if edge is not None and h.node_id not in collector.expected:
                raise Rejected(
                    grpc.StatusCode.FAILED_PRECONDITION, f"{h.node_id} was not selected for round {collector.round}"
                )
            if h.samples <= 0:
                raise Rejected(grpc.StatusCode.INVALID_ARGUMENT, "an update must report a positive sample count")
            reference = collector.reference
            if reference is None:
                raise Rejected(grpc.StatusCode.UNAVAILABLE, "this SN has not received the round's model yet")
            state = check_update(
                node_id=h.node_id,
                public_key=edge.public_key if edge is not None else None,
                round_no=h.round,
                version=h.version,
                expected_round=collector.round,
                expected_version=collector.version,
                claimed_digest=h.digest,
                signature=h.signature,
                data=data,
                reference=reference,
                max_bytes=self.max_bytes,
            )
        except Rejected as rej:
            if rej.code != grpc.StatusCode.ALREADY_EXISTS:
                collector.reject(h.node_id or "(no node id)", rej.reason)
            raise
        item = Accepted(h.node_id, state, int(h.samples), h.digest, float(h.train_loss))
        if not collector.accept(item):
            raise Rejected(grpc.StatusCode.FAILED_PRECONDITION, f"round {collector.round} is already closed")
        return pb.SubmitReply(accepted=True, message=f"update accepted for round {collector.round}")

    # ---------------- evaluation ----------------
    def evaluate(self, req: pb.EvaluateRequest) -> pb.EvaluateReply:
        """Ask every live EN for its personal accuracy on model ``version``."""
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
                    c.sn = self.node_id
                    reply.clients.append(c)
        return reply


def _edge(info: pb.EdgeInfo) -> Edge:
    return Edge(info.node_id, bytes(info.public_key), info.address, info.http_address, info.partition_index)
