"""Evaluation fan-out: personal evaluation on every live EN, through their SNs.

Each SN gets the request signed by the entry for it; it relays it unchanged to its ENs,
and what comes back is checked before it is pooled: the answer names an EN of that SN, it is
signed by that EN (``EVALUATION``: over the request's version, model digest and ``issued_ms``,
the EN's partition and its figures, checked against the EN's key the entry recorded in its
``node_joined`` block), and its figures are in range (``correct <= total``, a finite loss).
An answer that does not hold is listed under ``failed`` and counted in ``refused``; it never
reaches the pooled metrics.
"""

from __future__ import annotations

import logging
import threading

import grpc

from fedchain.services.sn.entry.authority import EntryAuthority
from fedchain.services.sn.entry.ports import PeerDirectory
from fedchain.services.sn.registry import Member, Registry
from fedchain.shared.config import Settings
from fedchain.shared.net.ingress import IngressRefused, check_evaluation, reason_text
from fedchain.shared.net.signing import SignatureRefused, check_signed, evaluation_fields
from fedchain.shared.net.statements import Domain
from fedchain.shared.rpc import node_pb2 as pb

EVAL_GRACE_S = 5.0

log = logging.getLogger("fedchain.entry")


class Evaluation:
    """Asks each live SN that has ENs to evaluate a model version; pools the answers."""

    def __init__(
        self, settings: Settings, registry: Registry, peers: PeerDirectory, authority: EntryAuthority
    ) -> None:
        self.settings = settings
        self.authority = authority
        self.registry = registry
        self.peers = peers
        self.refused = 0
        """Evaluation answers refused so far (unsigned, mis-signed, foreign or out of range)."""
        self._count_lock = threading.Lock()

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
                mine = {m.node_id: m for m in self.registry.edges_of(sn.node_id)}
                for c in part.clients:
                    why = _refusal(c, mine, req, self.authority.chain_id)
                    if why:
                        self._count_refused(c.node_id, why)
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

    def _count_refused(self, node_id: str, why: str) -> None:
        with self._count_lock:
            self.refused += 1
        log.warning("evaluation answer from %s refused: %s", node_id[:64], why)

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


def _refusal(
    c: pb.ClientEval, mine: dict[str, Member], req: pb.EvaluateRequest, chain_id: bytes
) -> str:
    """Why an SN's relayed evaluation answer is not pooled ("" when it is)."""
    edge = mine.get(c.node_id)
    if edge is None:
        return "evaluation answer for an edge node not on this super node"
    if not c.signature:
        return "evaluation answer is not signed by the edge node"
    try:
        check_signed(
            bytes.fromhex(edge.public_key), bytes(c.signature), Domain.EVALUATION, chain_id,
            c.node_id, evaluation_fields(c, req),
        )
    except SignatureRefused as exc:
        return reason_text(f"evaluation answer refused: {exc}")
    if c.partition_index != edge.partition_index:
        return "evaluation answer names another partition than the edge node's"
    try:
        check_evaluation(int(c.correct), int(c.total), float(c.loss))
    except IngressRefused as exc:
        return reason_text(f"evaluation answer refused: {exc}")
    return ""
