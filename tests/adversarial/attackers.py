"""Attackers built from the project's own client code: the generated stubs and ``NodeKey``.

``FakeEdge`` joins as an EN and is driven by the test (it records the round requests its SN
relays, signs its heartbeats); ``FakeSuper`` joins as an SN and answers the entry's
``OpenRound`` by recording it. Either can sign or forge whatever a test wants to send.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent import futures

import grpc
import pytest

from fedchain.shared.crypto import NodeKey
from fedchain.shared.net.signing import join_message, manifest_fields, update_fields
from fedchain.shared.net.statements import Domain, sign
from fedchain.shared.net.streams import aggregate_parts, join_model_chunks, update_parts
from fedchain.shared.node.heartbeats import HeartbeatCounter, signed_heartbeat
from fedchain.shared.rpc import node_pb2 as pb
from fedchain.shared.rpc import node_pb2_grpc
from fedchain.shared.tensors import decode, digest
from tests.conftest import free_port

CHUNK = 512 * 1024
BIG = [("grpc.max_receive_message_length", 64 << 20)]


def join(channel: grpc.Channel, key: NodeKey, address: str, token: str, role: str = "EN") -> pb.JoinReply:
    ts = int(time.time() * 1000)
    req = pb.JoinRequest(
        token=token, role=role, public_key=key.public_bytes, address=address, http_address="",
        timestamp_ms=ts, signature=key.sign(join_message(role, key.public_bytes, address, ts)),
    )
    return node_pb2_grpc.NodeStub(channel).Join(req, timeout=30)


def refused(call: Callable[[], object]) -> grpc.RpcError:
    """The RpcError ``call`` ends with (it must fail)."""
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


class _Served(node_pb2_grpc.NodeServicer):
    """A node the test runs in-process: a gRPC server on a free port."""

    def __init__(self) -> None:
        self.key = NodeKey.generate()
        self.address = f"127.0.0.1:{free_port()}"
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        node_pb2_grpc.add_NodeServicer_to_server(self, self.server)
        self.server.add_insecure_port(self.address)
        self.server.start()
        self._stop = threading.Event()
        self.counter = HeartbeatCounter()

    @property
    def node_id(self) -> str:
        return self.key.node_id

    def close(self) -> None:
        self._stop.set()
        self.server.stop(0)


class FakeEdge(_Served):
    """An EN the test drives by hand: joins, beats its SN, records the rounds it is offered."""

    def __init__(self, entry: str, token: str) -> None:
        super().__init__()
        self.opened: queue.Queue[pb.OpenRoundRequest] = queue.Queue()
        with grpc.insecure_channel(entry) as ch:
            self.reply = join(ch, self.key, self.address, token)
        self.chain_id = bytes(self.reply.chain_id)
        self.sn = grpc.insecure_channel(self.reply.sn_address, options=BIG)
        self.stub = node_pb2_grpc.NodeStub(self.sn)
        threading.Thread(target=self._beat, daemon=True).start()

    def _beat(self) -> None:
        while not self._stop.wait(0.3):
            try:
                self.stub.Heartbeat(self.heartbeat(), timeout=2)
            except grpc.RpcError:
                pass

    def heartbeat(self) -> pb.HeartbeatRequest:
        return signed_heartbeat(
            self.key, self.chain_id, self.counter.next(), role="EN", address=self.address,
            http_address="", state="idle",
        )

    def OpenRound(self, request: pb.OpenRoundRequest, context: grpc.ServicerContext) -> pb.OpenRoundReply:
        self.opened.put(request)
        return pb.OpenRoundReply(ok=True, edges=1)

    def Evaluate(self, request: pb.EvaluateRequest, context: grpc.ServicerContext) -> pb.EvaluateReply:
        return pb.EvaluateReply()  # a fake has no data to evaluate

    def global_model(self, req: pb.OpenRoundRequest) -> dict:
        stream = self.stub.FetchModel(
            pb.FetchModelRequest(version=req.version, digest=req.model_digest), timeout=30
        )
        return decode(join_model_chunks(stream, 64 << 20))

    def header(
        self, req: pb.OpenRoundRequest, data: bytes, *, samples: int = 10, signer: NodeKey | None = None,
        node_id: str | None = None, train_loss: float = 0.5,
    ) -> pb.UpdateHeader:
        d = digest(data)
        h = pb.UpdateHeader(
            node_id=node_id or self.node_id, round=req.round, version=req.version, samples=samples,
            digest=d, total_bytes=len(data), train_loss=train_loss, train_seconds=1.0,
        )
        h.signature = sign(
            signer or self.key, Domain.UPDATE, self.chain_id,
            update_fields(req.round, req.version, d, samples, train_loss, 1.0),
        )
        return h

    def submit(self, header: pb.UpdateHeader, data: bytes) -> pb.SubmitReply:
        reply: pb.SubmitReply = self.stub.SubmitUpdate(update_parts(header, data, CHUNK), timeout=30)
        return reply

    def close(self) -> None:
        super().close()
        self.sn.close()


class FakeSuper(_Served):
    """An SN the test drives by hand: joins, beats the entry, records the rounds opened to it."""

    def __init__(self, entry: str, token: str, *, beat: bool = True) -> None:
        super().__init__()
        self.opened: queue.Queue[pb.OpenRoundRequest] = queue.Queue()
        self.entry = grpc.insecure_channel(entry, options=BIG)
        self.stub = node_pb2_grpc.NodeStub(self.entry)
        self.reply = join(self.entry, self.key, self.address, token, role="SN")
        self.chain_id = bytes(self.reply.chain_id)
        self.edges: list[str] = []
        if beat:
            threading.Thread(target=self._beat, daemon=True).start()

    def _beat(self) -> None:
        while not self._stop.wait(0.3):
            try:
                reply = self.stub.Heartbeat(
                    signed_heartbeat(
                        self.key, self.chain_id, self.counter.next(), role="SN",
                        address=self.address, http_address="", state="idle",
                        alive_edges=self.edges,
                    ),
                    timeout=2,
                )
                self.edges = [e.node_id for e in reply.edges]
            except grpc.RpcError:
                pass

    def AssignEdge(self, request: pb.EdgeInfo, context: grpc.ServicerContext) -> pb.Ack:
        self.edges = sorted(set(self.edges) | {request.node_id})
        return pb.Ack(ok=True)

    def OpenRound(self, request: pb.OpenRoundRequest, context: grpc.ServicerContext) -> pb.OpenRoundReply:
        self.opened.put(request)
        return pb.OpenRoundReply(ok=True, edges=len(request.participants))

    def Evaluate(self, request: pb.EvaluateRequest, context: grpc.ServicerContext) -> pb.EvaluateReply:
        return pb.EvaluateReply()

    def aggregate(
        self, round_no: int, version: int, used: list[pb.UsedUpdate], data: bytes = b""
    ) -> pb.SubmitReply:
        """Submit a manifest signed by this SN (``data`` empty: an empty aggregate)."""
        h = pb.AggregateHeader(
            sn_node_id=self.node_id, round=round_no, version=version,
            samples=sum(u.samples for u in used) if data else 0, used=used,
            total_bytes=len(data), digest=digest(data) if data else "", aggregator="mean",
        )
        h.signature = sign(self.key, Domain.MANIFEST, self.chain_id, manifest_fields(h))
        reply: pb.SubmitReply = self.stub.SubmitAggregate(aggregate_parts(h, data, CHUNK), timeout=30)
        return reply

    def close(self) -> None:
        super().close()
        self.entry.close()
