"""gRPC servicer of an SN (and of the entry, which is an SN with the entry role).

A message that does not hold (forged, replayed, malformed) is answered with the status of
its ``Rejected`` and changes nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import grpc

from fedchain.services.sn.entry import EntryRole
from fedchain.services.sn.status import RelayLog
from fedchain.services.sn.supernode import SuperNode
from fedchain.services.sn.validation import Rejected
from fedchain.shared.chain.round_proof import ProofUnavailable, make_proof
from fedchain.shared.ledger.errors import LedgerError
from fedchain.shared.net.ingress import IngressRefused, check_node_id
from fedchain.shared.net.streams import model_frames
from fedchain.shared.node.admission import peer_host
from fedchain.shared.node.metrics import NodeMetrics
from fedchain.shared.rpc import ledger_pb2, node_pb2_grpc
from fedchain.shared.rpc import node_pb2 as pb
from fedchain.shared.tensors import TensorError

log = logging.getLogger("fedchain.sn.rpc")

JOIN_RELAY_TIMEOUT_S = 20.0
"""How long an SN waits for the entry's answer to a join it relays."""


class SuperNodeServicer(node_pb2_grpc.NodeServicer):
    """Maps RPCs onto the SN role and, on the entry, the entry role."""

    def __init__(
        self,
        sn: SuperNode,
        entry: EntryRole | None,
        metrics: NodeMetrics | None = None,
        relayed: RelayLog | None = None,
    ) -> None:
        self.sn = sn
        self.entry = entry
        self.metrics = metrics
        self.relayed = relayed if relayed is not None else RelayLog()

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.updates.labels(outcome=outcome).inc()

    def _need_entry(self, context: grpc.ServicerContext, what: str) -> EntryRole:
        if self.entry is None:
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{what} is handled by the entry super node at {self.sn.entry_address}, not this SN",
            )
        assert self.entry is not None
        return self.entry

    def Join(self, request: pb.JoinRequest, context: grpc.ServicerContext) -> pb.JoinReply:
        if self.entry is None:
            return self._relay_join(request, context)
        entry = self.entry
        try:
            return entry.join(request, peer_host(context.peer()))
        except Rejected as rej:
            log.warning("join refused (%s): %s", request.address, rej.reason)
            context.abort(rej.code, rej.reason)
            raise  # unreachable

    def _relay_join(self, request: pb.JoinRequest, context: grpc.ServicerContext) -> pb.JoinReply:
        """A node that joins through this SN: the request goes to the entry as it came (the
        joiner signed it) and the entry's signed reply comes back unchanged (the joiner checks
        the entry's signature, so this SN can change nothing in it)."""
        try:
            reply: pb.JoinReply = self.sn.peers.stub(self.sn.entry_address).Join(
                request, timeout=JOIN_RELAY_TIMEOUT_S
            )
        except grpc.RpcError as exc:
            context.abort(exc.code(), f"via super node {self.sn.node_id}: {exc.details()}")
            raise
        return reply

    def Heartbeat(self, request: pb.HeartbeatRequest, context: grpc.ServicerContext) -> pb.HeartbeatReply:
        try:
            if request.role == "EN":
                known = self.sn.edge_heartbeat(request)
                return pb.HeartbeatReply(known=known, entry_node_id=self.sn.entry_node_id)
            entry = self._need_entry(context, "super node heartbeats")
            return entry.heartbeat(request)
        except Rejected as rej:
            log.warning("heartbeat refused: %s", rej.reason)
            context.abort(rej.code, rej.reason)
            raise

    def AssignEdge(self, request: pb.EdgeInfo, context: grpc.ServicerContext) -> pb.Ack:
        try:
            self.sn.assign_edge(request)
        except Rejected as rej:
            log.warning("edge assignment refused: %s", rej.reason)
            context.abort(rej.code, rej.reason)
            raise
        return pb.Ack(ok=True)

    def OpenRound(self, request: pb.OpenRoundRequest, context: grpc.ServicerContext) -> pb.OpenRoundReply:
        try:
            reply = self.sn.open_round(request)
        except Rejected as rej:
            log.warning("round request refused: %s", rej.reason)
            context.abort(rej.code, rej.reason)
            raise
        if reply.ok:
            self.relayed.record(request.round, request.version)
        return reply

    def FetchModel(self, request: pb.FetchModelRequest, context: grpc.ServicerContext) -> Iterator[bytes]:
        """The model's ``Chunk`` frames, already serialized (served by ``add_node_servicer``)."""
        try:
            if self.entry is not None:
                data = self.entry.model_bytes(request.version, request.digest)
            else:
                data = self.sn.model_bytes(request.version, request.digest)
        except KeyError as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc).strip("'\""))
        except (TensorError, grpc.RpcError) as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"model not available: {exc}")
        except LedgerError as exc:  # a blob missing from the ledger (or the ledger down)
            context.abort(grpc.StatusCode.NOT_FOUND, f"model not available: {exc}")
        yield from model_frames(data, self.sn.chunk_bytes)  # digest: once per cached buffer

    def SubmitUpdate(self, request_iterator: Iterator[pb.UpdatePart], context: grpc.ServicerContext) -> pb.SubmitReply:
        try:
            reply = self.sn.submit_update(request_iterator)
            self._count("accepted")
            return reply
        except Rejected as rej:
            self._count("rejected")
            log.warning("update refused: %s", rej.reason)
            context.abort(rej.code, rej.reason)
            raise

    def SubmitAggregate(
        self, request_iterator: Iterator[pb.AggregatePart], context: grpc.ServicerContext
    ) -> pb.SubmitReply:
        entry = self._need_entry(context, "aggregation")
        try:
            return entry.submit_aggregate(request_iterator)
        except Rejected as rej:
            log.warning("aggregate refused: %s", rej.reason)
            context.abort(rej.code, rej.reason)
            raise

    def Consistency(
        self, request: ledger_pb2.ConsistencyRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.ConsistencyReply:
        """The entry's consistency proof between two sizes of its chain (self-verifying)."""
        entry = self._need_entry(context, "consistency proofs")
        try:
            proof = entry.consistency(int(request.from_size), int(request.to_size))
        except IndexError as exc:
            context.abort(grpc.StatusCode.OUT_OF_RANGE, str(exc))
            raise
        except LedgerError as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"the chain cannot be read: {exc}")
            raise
        return ledger_pb2.ConsistencyReply(
            from_size=request.from_size, to_size=request.to_size, proof=proof
        )

    def RetainUpdate(
        self, request_iterator: Iterator[pb.UpdatePart], context: grpc.ServicerContext
    ) -> pb.SubmitReply:
        entry = self._need_entry(context, "keeping updates")
        try:
            return entry.retain_update(request_iterator)
        except Rejected as rej:
            log.warning("retained update refused: %s", rej.reason)
            context.abort(rej.code, rej.reason)
            raise

    def RoundProof(self, request: pb.RoundProofRequest, context: grpc.ServicerContext) -> pb.RoundProofReply:
        entry = self._need_entry(context, "round proofs")
        try:
            check_node_id(request.node_id, "node id")
        except IngressRefused as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:
            proof = make_proof(entry.chain.blocks(), request.round, request.node_id)
        except ProofUnavailable as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
            raise
        return pb.RoundProofReply(proof_json=json.dumps(proof.to_json(), sort_keys=True))

    def Evaluate(self, request: pb.EvaluateRequest, context: grpc.ServicerContext) -> pb.EvaluateReply:
        try:
            return self.sn.evaluate(request)
        except Rejected as rej:
            log.warning("evaluation request refused: %s", rej.reason)
            context.abort(rej.code, rej.reason)
            raise
        except (TensorError, grpc.RpcError) as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"evaluation failed: {exc}")
            raise
