"""gRPC servicer of an EN: rounds and evaluations arrive from its SN (signed by the entry)."""

from __future__ import annotations

import grpc

from fedchain.services.en.edge import EdgeNode
from fedchain.shared.node.entry_requests import RequestRefused
from fedchain.shared.rpc import node_pb2 as pb
from fedchain.shared.rpc import node_pb2_grpc


class EdgeServicer(node_pb2_grpc.NodeServicer):
    """Only OpenRound and Evaluate make sense on an EN; the rest say so."""

    def __init__(self, en: EdgeNode) -> None:
        self.en = en

    def OpenRound(self, request: pb.OpenRoundRequest, context: grpc.ServicerContext) -> pb.OpenRoundReply:
        try:
            return self.en.open_round(request)
        except RequestRefused as exc:
            context.abort(exc.code, exc.reason)
            raise

    def Evaluate(self, request: pb.EvaluateRequest, context: grpc.ServicerContext) -> pb.EvaluateReply:
        try:
            return self.en.evaluate(request)
        except RequestRefused as exc:
            context.abort(exc.code, exc.reason)
            raise
        except Exception as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"evaluation failed on {self.en.node_id}: {exc}")
            raise

    def Join(self, request: pb.JoinRequest, context: grpc.ServicerContext) -> pb.JoinReply:
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, "this is an edge node; join through the entry super node")
        raise AssertionError

    def Heartbeat(self, request: pb.HeartbeatRequest, context: grpc.ServicerContext) -> pb.HeartbeatReply:
        return pb.HeartbeatReply(known=True)
