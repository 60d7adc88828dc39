"""Aggregate intake: the SNs' aggregates for the open round, checked and collected."""

from __future__ import annotations

import grpc

from fedchain.services.sn.collector import Accepted, RoundCollector
from fedchain.services.sn.entry.ports import AggregateStream
from fedchain.services.sn.registry import Registry
from fedchain.services.sn.validation import Rejected, check_update, partial_max_bytes
from fedchain.shared.crypto import verify_signature
from fedchain.shared.limits import StreamLimits
from fedchain.shared.net.signing import update_message
from fedchain.shared.net.streams import StreamRefused, read_body, read_header
from fedchain.shared.rpc import node_pb2 as pb

EMPTY_DIGEST = "00" * 32
"""What an SN signs in place of a digest when none of its ENs delivered."""


class AggregateIntake:
    """Holds the open round's collector; ``submit`` checks one SN aggregate into it."""

    def __init__(self, registry: Registry, max_bytes: int) -> None:
        self.registry = registry
        self.max_bytes = max_bytes
        self._open: RoundCollector | None = None

    def open(self, collector: RoundCollector) -> None:
        """Start taking aggregates for ``collector``'s round."""
        self._open = collector

    def close(self) -> None:
        self._open = None

    def submit(self, parts: AggregateStream) -> pb.SubmitReply:
        """Receive an SN's aggregate for the open round; raises Rejected on refusal."""
        try:
            h = read_header(parts, "aggregate").header
        except StreamRefused as exc:
            raise Rejected(exc.code, exc.reason) from None
        collector = self._open
        if collector is None or collector.closed:
            raise Rejected(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"no round is open (aggregate for round {h.round})",
            )
        limit = partial_max_bytes(collector.reference or {}, self.max_bytes)
        data = self._read(parts, limit, h)
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
                message = update_message(EMPTY_DIGEST, h.round, h.version)
                if not verify_signature(pk, bytes(h.signature), message):
                    raise Rejected(grpc.StatusCode.PERMISSION_DENIED, "bad signature on aggregate")
                collector.accept(Accepted(h.sn_node_id, {}, 0, "", 0.0, extra))
                return pb.SubmitReply(accepted=True, message="empty aggregate recorded")
            if collector.reference is None:
                raise Rejected(grpc.StatusCode.UNAVAILABLE, "the round's model is not ready yet")
            state = check_update(
                node_id=h.sn_node_id,
                public_key=pk,
                round_no=h.round,
                version=h.version,
                expected_round=collector.round,
                expected_version=collector.version,
                claimed_digest=h.digest,
                signature=bytes(h.signature),
                data=data,
                reference=collector.reference,
                max_bytes=limit,
            )
            if h.samples <= 0 or h.samples != sum(u.samples for u in h.used):
                raise Rejected(
                    grpc.StatusCode.INVALID_ARGUMENT, "aggregate sample count does not add up"
                )
        except Rejected as rej:
            collector.reject(h.sn_node_id, rej.reason)
            for u in h.used:
                collector.rejected.append(
                    (u.node_id, f"aggregate of SN {h.sn_node_id} refused: {rej.reason}")
                )
            raise
        if not collector.accept(Accepted(h.sn_node_id, state, int(h.samples), h.digest, 0.0, extra)):
            raise Rejected(
                grpc.StatusCode.ALREADY_EXISTS, f"{h.sn_node_id} already answered round {h.round}"
            )
        return pb.SubmitReply(accepted=True, message=f"aggregate of {len(h.used)} updates accepted")

    def _read(self, parts: AggregateStream, limit: int, h: pb.AggregateHeader) -> bytes:
        try:
            return read_body(
                parts, StreamLimits.for_bytes(limit), "aggregate",
                size=h.total_bytes, digest=h.digest,
            )
        except StreamRefused as exc:
            raise Rejected(exc.code, exc.reason) from None
