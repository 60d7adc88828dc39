"""Evaluation fan-out: personal evaluation on every live EN, through their SNs."""

from __future__ import annotations

import grpc

from fedchain.services.sn.entry.ports import PeerDirectory
from fedchain.services.sn.registry import Registry
from fedchain.shared.config import Settings
from fedchain.shared.rpc import node_pb2 as pb

EVAL_GRACE_S = 5.0


class Evaluation:
    """Asks each live SN that has ENs to evaluate a model version; pools the answers."""

    def __init__(self, settings: Settings, registry: Registry, peers: PeerDirectory) -> None:
        self.settings = settings
        self.registry = registry
        self.peers = peers

    def evaluate_all(self, version: int, model_digest: str, algorithm: str) -> pb.EvaluateReply:
        """Every EN's answer for model ``version``; SNs that fail are listed in ``failed``."""
        req = pb.EvaluateRequest(
            version=version,
            model_digest=model_digest,
            timeout_s=self.settings.round_timeout,
            algorithm=algorithm,
        )
        out = pb.EvaluateReply()
        for sn in self.registry.alive_sns():
            if not self.registry.edges_of(sn.node_id):
                continue
            try:
                part = self.peers.stub(sn.address).Evaluate(
                    req, timeout=self.settings.round_timeout + EVAL_GRACE_S
                )
                out.clients.extend(part.clients)
                out.failed.extend(part.failed)
            except grpc.RpcError as exc:
                out.failed.append(
                    pb.Rejection(node_id=sn.node_id, reason=f"super node: {exc.code().name}")
                )
        return out

    def round_metrics(self, version: int, model_digest: str, algorithm: str) -> dict[str, float]:
        """Pooled accuracy and loss of a round's new model (empty when no EN answered)."""
        reply = self.evaluate_all(version, model_digest, algorithm)
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
