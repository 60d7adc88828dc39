"""Evaluation fan-out: personal evaluation on every live EN, through their SNs.

Each SN gets the request signed by the entry for it; it relays it unchanged to its ENs,
and what comes back is checked (``correct <= total``, a finite loss) before it is pooled.
"""

from __future__ import annotations

import grpc

from fedchain.services.sn.entry.authority import EntryAuthority
from fedchain.services.sn.entry.ports import PeerDirectory
from fedchain.services.sn.registry import Registry
from fedchain.shared.config import Settings
from fedchain.shared.net.ingress import IngressRefused, check_evaluation, reason_text
from fedchain.shared.rpc import node_pb2 as pb

EVAL_GRACE_S = 5.0


class Evaluation:
    """Asks each live SN that has ENs to evaluate a model version; pools the answers."""

    def __init__(
        self, settings: Settings, registry: Registry, peers: PeerDirectory, authority: EntryAuthority
    ) -> None:
        self.settings = settings
        self.authority = authority
        self.registry = registry
        self.peers = peers

    def evaluate_all(self, version: int, model_digest: str, algorithm: str) -> pb.EvaluateReply:
        """Every EN's answer for model ``version``; SNs that fail are listed in ``failed``."""
        out = pb.EvaluateReply()
        for sn in self.registry.alive_sns():
            if not self.registry.edges_of(sn.node_id):
                continue
            req = self.authority.sign_evaluate(
                pb.EvaluateRequest(
                    version=version,
                    model_digest=model_digest,
                    timeout_s=self.settings.round_timeout,
                    algorithm=algorithm,
                    sn_node_id=sn.node_id,
                )
            )
            try:
                part = self.peers.stub(sn.address).Evaluate(
                    req, timeout=self.settings.round_timeout + EVAL_GRACE_S
                )
                mine = {m.node_id for m in self.registry.edges_of(sn.node_id)}
                for c in part.clients:
                    why = _refusal(c, mine)
                    if why:
                        out.failed.append(pb.Rejection(node_id=c.node_id[:64], reason=why))
                    else:
                        c.sn = sn.node_id
                        out.clients.append(c)
                out.failed.extend(
                    pb.Rejection(node_id=f.node_id[:64], reason=reason_text(f.reason))
                    for f in part.failed[: len(mine) + 1]
                )
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


def _refusal(c: pb.ClientEval, mine: set[str]) -> str:
    """Why an SN's relayed evaluation answer is not pooled ("" when it is)."""
    if c.node_id not in mine:
        return "evaluation answer for an edge node not on this super node"
    try:
        check_evaluation(int(c.correct), int(c.total), float(c.loss))
    except IngressRefused as exc:
        return reason_text(f"evaluation answer refused: {exc}")
    return ""
